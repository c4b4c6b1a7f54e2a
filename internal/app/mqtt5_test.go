package app_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/testenv"
)

// TestMQTT5ContentType: a device speaking MQTT 5 to the embedded broker
// declares SenML with the content type application/senml+json (contract
// §1). A SenML pack whose first record names no SenML field is taken as
// SenML for the content type alone, and an object declared as SenML is
// rejected as malformed, where without the content type it would have been
// stored as carehub's own format.
func TestMQTT5ContentType(t *testing.T) {
	in := testenv.SharedInflux(t)
	db := in.CreateDB(t)
	a := startApp(t, env(t, in.URL, db, nil))
	base := "http://" + a.HTTPAddr()
	d := register(t, base, "wearable")
	rejected, err := a.NC.SubscribeSync(model.RejectedSubject(d.ID))
	if err != nil {
		t.Fatal(err)
	}

	c := dialMQTT5(t, a.MQTTURL(), d)
	now := time.Now().Add(-time.Minute).Truncate(time.Second)
	// The first record has only a custom field: by shape this is not SenML.
	pack := fmt.Sprintf(`[{"x_batch":"7"},{"bn":"urn:dev:care:%s:","bt":%d,"n":"heart_rate","u":"/min","v":71},{"n":"spo2","u":"%%","v":98,"t":1}]`,
		d.ID, now.Unix())
	c.publish(1, d.MQTT.TopicPrefix+"telemetry", ingestSenML, []byte(pack))
	testenv.WaitFor(t, 20*time.Second, "the SenML values in InfluxDB", func() bool {
		return countPoints(t, in, db, "readings", "heart_rate", d.ID) == 1 && countPoints(t, in, db, "readings", "spo2", d.ID) == 1
	})

	c.publish(2, d.MQTT.TopicPrefix+"telemetry", ingestSenML, []byte(`{"values":{"heart_rate":72}}`))
	// The pack's first record may have been reported too: look for the
	// object's rejection among what comes.
	var got []model.Rejection
	for {
		msg, err := rejected.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no malformed rejection naming SenML for an object declared as SenML; got %+v", got)
		}
		var r model.Rejection
		if err := json.Unmarshal(msg.Data, &r); err != nil {
			t.Fatal(err)
		}
		if r.Reason == model.ReasonMalformed && strings.Contains(r.Detail, "SenML") {
			break
		}
		got = append(got, r)
	}
	if n := countPoints(t, in, db, "readings", "heart_rate", d.ID); n != 1 {
		t.Fatalf("%d heart_rate points after the rejected object, want 1", n)
	}
}

const ingestSenML = "application/senml+json"

// mqtt5Client is the least of an MQTT 5 device: paho's Go client speaks
// 3.1.1 only, so the packets are mochi's encoders' on a plain connection.
type mqtt5Client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialMQTT5(t *testing.T, brokerURL string, d deviceCreds) *mqtt5Client {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &mqtt5Client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: d.ID,
			UsernameFlag: true, Username: []byte(d.ID), PasswordFlag: true, Password: []byte(d.MQTT.Password)}})
	typ, body := c.read()
	if typ != packets.Connack || len(body) < 2 || body[1] != packets.CodeSuccess.Code {
		t.Fatalf("MQTT 5 connect: packet type %d, body %x", typ, body)
	}
	return c
}

// publish sends a QoS 1 message with a content type and waits for its
// successful PUBACK.
func (c *mqtt5Client) publish(id uint16, topic, contentType string, payload []byte) {
	c.t.Helper()
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		PacketID: id, TopicName: topic, Payload: payload, Properties: packets.Properties{ContentType: contentType}})
	typ, body := c.read()
	if typ != packets.Puback || len(body) < 2 || uint16(body[0])<<8|uint16(body[1]) != id || (len(body) > 2 && body[2] >= 0x80) {
		c.t.Fatalf("publish %d: packet type %d, body %x, want a successful PUBACK", id, typ, body)
	}
}

func (c *mqtt5Client) send(pk packets.Packet) {
	c.t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next packet's type and the bytes after its fixed header.
func (c *mqtt5Client) read() (byte, []byte) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	first, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatal(err)
	}
	n, shift := 0, 0
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			c.t.Fatal(err)
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		shift += 7
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatal(err)
	}
	return first >> 4, body
}
