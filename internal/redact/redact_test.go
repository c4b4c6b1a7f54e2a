package redact_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/carehub/carehub/internal/redact"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://carehub:s3cret@127.0.0.1:4222":              "nats://carehub:REDACTED@127.0.0.1:4222",
		"nats://tok3n@127.0.0.1:4222":                       "nats://REDACTED@127.0.0.1:4222",
		"tcp://svc:pw@broker:1883":                          "tcp://svc:REDACTED@broker:1883",
		"http://127.0.0.1:8086/query?db=care&u=admin&p=pw9": "http://127.0.0.1:8086/query?db=care&p=REDACTED&u=admin",
		"https://influx:8086/api/v2/write?token=abc":        "https://influx:8086/api/v2/write?token=REDACTED",
		"http://127.0.0.1:8086":                             "http://127.0.0.1:8086",
		"127.0.0.1:4222":                                    "127.0.0.1:4222",
		"":                                                  "",
	} {
		if got := redact.URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStringFindsURLsInText(t *testing.T) {
	in := `connect to NATS at nats://carehub:hunter22@10.0.0.1:4222: dial failed; Post "http://u:pw77@influx:8086/write?p=pw88".`
	got := redact.String(in)
	for _, secret := range []string{"hunter22", "pw77", "pw88"} {
		if strings.Contains(got, secret) {
			t.Errorf("String left %q in %q", secret, got)
		}
	}
	if !strings.Contains(got, "10.0.0.1:4222") || !strings.HasSuffix(got, `".`) {
		t.Errorf("String dropped more than the credentials: %q", got)
	}
	// A URL that does not parse still loses its userinfo.
	if got := redact.String("mqtt://a:b%zz@host:1883/x"); strings.Contains(got, "a:b") {
		t.Errorf("unparsable URL kept its userinfo: %q", got)
	}
}

func TestErrKeepsChain(t *testing.T) {
	base := fmt.Errorf("connect to nats://u:topsecret@127.0.0.1:1: %w", io.EOF)
	err := redact.Err(base)
	if strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("Err kept the secret: %v", err)
	}
	if !errors.Is(err, io.EOF) {
		t.Fatal("Err broke the error chain")
	}
	if redact.Err(nil) != nil {
		t.Fatal("Err(nil) != nil")
	}
	plain := errors.New("no url here")
	if redact.Err(plain) != plain {
		t.Fatal("Err wrapped an error without URL")
	}
}

func TestStringMasksEachURLOfAList(t *testing.T) {
	got := redact.String("connect to nats://carehub:s3cret@a:4222,nats://carehub:s3cret@b:4222: refused")
	if strings.Contains(got, "s3cret") {
		t.Fatalf("a password of the list is left: %s", got)
	}
	if !strings.Contains(got, "@a:4222") || !strings.Contains(got, "@b:4222") {
		t.Fatalf("the servers are lost: %s", got)
	}
}
