package app_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/carehub/carehub/internal/testenv"
)

// TestShippedMosquittoBindsClientID runs the shipped
// deploy/mosquitto/carehub.conf (ports, paths and logging moved into a
// temporary directory, nothing else changed) with a password file: a device
// that CONNECTs with another device's client id does not take over that
// device's session, because the device listener makes the client id the
// username; carehub's connections on its loopback listener keep their own
// client ids under one user. With the former single listener, the second
// login closed the first device's connection.
func TestShippedMosquittoBindsClientID(t *testing.T) {
	src, err := os.ReadFile("../../deploy/mosquitto/carehub.conf")
	if err != nil {
		t.Fatal(err)
	}
	acl, err := filepath.Abs("../../deploy/mosquitto/carehub.acl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	devPort, svcPort := testenv.FreePort(t), testenv.FreePort(t)
	passwd := filepath.Join(dir, "carehub.passwd")
	for i, u := range [][2]string{{"carehub", "svc-pw"}, {"dev-a", "a-pw"}, {"dev-b", "b-pw"}} {
		args := []string{"-b", passwd, u[0], u[1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v %s", err, out)
		}
	}
	var conf strings.Builder
	if os.Geteuid() == 0 {
		// As root mosquitto would drop to the mosquitto user, which cannot
		// read the temporary files.
		conf.WriteString("user root\n")
	}
	// The shipped file starts as it is, its TLS listener included, with a
	// generated certificate in place of /etc/mosquitto/certs.
	certs := testenv.GenerateCerts(t)
	tlsPort := testenv.FreePort(t)
	listeners := 0
	for _, line := range strings.Split(string(src), "\n") {
		switch {
		case line == "listener 1883 127.0.0.1":
			line = fmt.Sprintf("listener %d 127.0.0.1", devPort)
			listeners++
		case line == "listener 1884 127.0.0.1":
			line = fmt.Sprintf("listener %d 127.0.0.1", svcPort)
			listeners++
		case line == "listener 8883":
			line = fmt.Sprintf("listener %d 127.0.0.1", tlsPort)
			listeners++
		case strings.HasPrefix(line, "certfile "):
			line = "certfile " + certs.CertFile
		case strings.HasPrefix(line, "keyfile "):
			line = "keyfile " + certs.KeyFile
		case strings.HasPrefix(line, "persistence_location "):
			line = "persistence_location " + dir + "/"
		case line == "log_dest stderr":
			line = "log_dest file " + filepath.Join(dir, "mosquitto.log")
		}
		line = strings.ReplaceAll(line, "/etc/mosquitto/carehub.passwd", passwd)
		line = strings.ReplaceAll(line, "/etc/mosquitto/carehub.acl", acl)
		conf.WriteString(line + "\n")
	}
	if listeners != 3 {
		t.Fatalf("carehub.conf has %d of the device (1883 and 8883) and carehub (1884) listeners, want all three", listeners)
	}
	file := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(file, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mosquitto", "-c", file)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testenv.WaitFor(t, 10*time.Second, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	login := func(port int, clientID, user, pw string) mqtt.Client {
		t.Helper()
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", port)).
			SetClientID(clientID).SetUsername(user).SetPassword(pw).SetCleanSession(false).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("%s as %s on port %d: %v", clientID, user, port, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(50) })
		return c
	}
	alive := func(c mqtt.Client, user string) error {
		tok := c.Publish("care/v1/dev/"+user+"/status", 1, false, `{"online":true}`)
		if !tok.WaitTimeout(5 * time.Second) {
			return fmt.Errorf("no PUBACK")
		}
		return tok.Error()
	}

	// carehub: two connections of one user with their own client ids.
	svc0 := login(svcPort, "carehub-ingest-0", "carehub", "svc-pw")
	got := make(chan string, 16)
	if tok := svc0.Subscribe("$share/carehub/care/v1/dev/+/+", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	svc1 := login(svcPort, "carehub-ingest-1", "carehub", "svc-pw")

	a := login(devPort, "dev-a", "dev-a", "a-pw")
	// dev-b presents dev-a's client id.
	b := login(devPort, "dev-a", "dev-b", "b-pw")
	if err := alive(a, "dev-a"); err != nil {
		t.Fatalf("dev-a's connection after dev-b logged in with its client id: %v (session taken over)", err)
	}
	if err := alive(b, "dev-b"); err != nil {
		t.Fatalf("dev-b: %v", err)
	}
	for _, want := range []string{"care/v1/dev/dev-a/status", "care/v1/dev/dev-b/status"} {
		select {
		case topic := <-got:
			if topic != want {
				t.Errorf("carehub received %s, want %s", topic, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("carehub did not receive %s", want)
		}
	}
	if !svc0.IsConnectionOpen() || !svc1.IsConnectionOpen() {
		t.Error("carehub's two connections of one user did not both stay connected")
	}
}
