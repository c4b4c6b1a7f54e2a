package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/app"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/config"
	"github.com/carehub/carehub/internal/natsx"
)

// auditVerifyTimeout bounds one verification: two years of a district's
// trail is some millions of entries, read at tens of thousands a second.
const auditVerifyTimeout = 30 * time.Minute

// auditCommand runs `carehub audit verify`: it reads CARE_AUDIT from the
// NATS that carehub uses (CARE_NATS_URL, or the embedded server at
// CARE_NATS_LISTEN, which must be running) and checks the hash chain.
// Exit 0: intact; 1: a broken link, named on stdout; 2: it could not check.
func auditCommand(ctx context.Context, args []string, cfg config.Config, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "verify" {
		fmt.Fprint(stderr, "usage: carehub audit verify\n")
		return 2
	}
	js, closeNATS, err := connectJetStream(cfg, "carehub-audit-verify")
	if err != nil {
		fmt.Fprintf(stderr, "carehub audit verify: %v\n", err)
		return 2
	}
	defer closeNATS()
	ctx, cancel := context.WithTimeout(ctx, auditVerifyTimeout)
	defer cancel()
	v, err := audit.New(js, nil).Verify(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "carehub audit verify: %v\n", err)
		return 2
	}
	j, _ := json.Marshal(v)
	if v.Break != nil {
		fmt.Fprintf(stdout, "audit trail BROKEN at entry %d: %s\n%s\n", v.Break.Seq, v.Break.Reason, j)
		return 1
	}
	fmt.Fprintf(stdout, "audit trail intact: %d entries (%d to %d), head %s\n%s\n", v.Entries, v.FirstSeq, v.LastSeq, v.Head, j)
	return 0
}

// connectJetStream connects a command to the NATS that carehub uses
// (CARE_NATS_URL, or the embedded server at CARE_NATS_LISTEN, which must be
// running) under the connection name name.
func connectJetStream(cfg config.Config, name string) (jetstream.JetStream, func(), error) {
	url, opts, err := app.NATSClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	nc, err := natsx.Connect(url, name, zerolog.Nop(), opts...) // errors come back here
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}
