package sim

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"time"

	"github.com/carehub/carehub/internal/model"
)

// Action says what the plumbing does with a Msg.
type Action int

// Actions of a Msg.
const (
	// Publish sends Payload on Topic (QoS 1, retained if Retained).
	Publish Action = iota
	// Connect opens the device's connection (with its Last Will) if closed.
	Connect
	// Drop kills the device's connection without an MQTT DISCONNECT, so the
	// broker publishes its Last Will [MQTT-3.1.2-8].
	Drop
	// Note is a scenario start for the log: Text names the scenario; it is
	// never sent anywhere.
	Note
)

// Msg is one thing a simulated home does at a simulated time.
type Msg struct {
	At       time.Time // simulated time it happens
	Action   Action
	DeviceID string
	Topic    string
	Payload  []byte
	Retained bool
	Text     string // for Note: the scenario
	seq      uint64 // keeps messages with equal At in the order they were made
}

// Sample is one telemetry record as a device sends it (contract §1): ts in
// Unix milliseconds and values by canonical metric name.
type Sample struct {
	TS     int64              `json:"ts"`
	Values map[string]float64 `json:"values"`
}

// EventPayload is a device event as sent (contract §1).
type EventPayload struct {
	TS   int64          `json:"ts"`
	Type string         `json:"type"`
	Data map[string]any `json:"data,omitempty"`
}

// StatusPayload is a device's presence report (contract §1).
type StatusPayload struct {
	Online     bool     `json:"online"`
	BatteryPct *float64 `json:"battery_pct,omitempty"`
	RSSIdBm    *float64 `json:"rssi_dbm,omitempty"`
	FW         string   `json:"fw,omitempty"`
}

// WillPayload is every device's Last Will (contract §1).
var WillPayload = []byte(`{"online":false}`)

// TelemetryMsg encodes one sample for deviceID.
func TelemetryMsg(at time.Time, deviceID string, s Sample) Msg {
	b, _ := json.Marshal(s) // cannot fail: numbers and strings only
	return Msg{At: at, Action: Publish, DeviceID: deviceID, Topic: model.DeviceTopic(deviceID, model.TopicTelemetry), Payload: b}
}

// CatchUpMsg encodes missed samples as one JSON array (contract §1: a device
// catching up after an outage).
func CatchUpMsg(at time.Time, deviceID string, ss []Sample) Msg {
	b, _ := json.Marshal(ss)
	return Msg{At: at, Action: Publish, DeviceID: deviceID, Topic: model.DeviceTopic(deviceID, model.TopicTelemetry), Payload: b}
}

// msgHeap orders pending messages by time, then by creation.
type msgHeap []Msg

func (h msgHeap) Len() int { return len(h) }
func (h msgHeap) Less(i, j int) bool {
	if !h[i].At.Equal(h[j].At) {
		return h[i].At.Before(h[j].At)
	}
	return h[i].seq < h[j].seq
}
func (h msgHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *msgHeap) Push(x any)   { *h = append(*h, x.(Msg)) }
func (h *msgHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	*h = old[:len(old)-1]
	return m
}

var _ heap.Interface = (*msgHeap)(nil)

func eventPublish(at time.Time, deviceID string, e EventPayload) Msg {
	b, _ := json.Marshal(e)
	return Msg{At: at, Action: Publish, DeviceID: deviceID, Topic: model.DeviceTopic(deviceID, model.TopicEvent), Payload: b}
}

// statusPublish is a retained status report (contract §1: status is retained).
func statusPublish(at time.Time, deviceID string, st StatusPayload) Msg {
	b, _ := json.Marshal(st)
	return Msg{At: at, Action: Publish, DeviceID: deviceID, Topic: model.DeviceTopic(deviceID, model.TopicStatus), Payload: b, Retained: true}
}

// HeartRateArray is a catch-up telemetry array of n heart rates, one a
// second, the last a minute before now: the shape a flooding or catching-up
// wearable sends, for tests and probes of ingest's quotas and record cap.
func HeartRateArray(n int, now time.Time) []byte {
	start := now.Add(-time.Minute - time.Duration(n)*time.Second)
	b := []byte{'['}
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"ts":%d,"values":{"heart_rate":%d}}`, start.Add(time.Duration(i)*time.Second).UnixMilli(), 60+i%40)
	}
	return append(b, ']')
}
