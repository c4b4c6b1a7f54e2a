package config

import (
	"strings"
	"testing"

	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/natsx"
)

// TestIngestLimits: the quota, record cap, stream sizes and store limit of
// issue 9 item 7 have defaults, are read, and bad values say how to fix.
func TestIngestLimits(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.IngestBatch != DefaultIngestBatch || c.IngestBatchDelay != DefaultIngestBatchDelay {
		t.Errorf("batch defaults: %d, %s", c.IngestBatch, c.IngestBatchDelay)
	}
	if c.MaxRecords != 1000 || c.DeviceRate != 20 || c.DeviceBurst != 2000 || c.DeviceEventRate != 2 || c.DeviceEventBurst != 60 || c.NATSMaxStore != 0 || c.StreamMaxBytes != nil {
		t.Errorf("defaults: %+v", c)
	}
	if got := c.StreamOptions().MaxBytesFor(model.StreamReadings); got != 8<<30 {
		t.Errorf("default readings size %d", got)
	}
	c, err = Load(env(map[string]string{"CARE_STREAM_MAX_BYTES": "CARE_READINGS=20GiB, CARE_AUDIT=512MiB", "CARE_NATS_MAX_STORE": "40GiB",
		"CARE_MAX_RECORDS": "500", "CARE_DEVICE_RATE": "5", "CARE_DEVICE_BURST": "500"}))
	if err != nil {
		t.Fatal(err)
	}
	o := c.StreamOptions()
	if o.MaxBytesFor(model.StreamReadings) != 20<<30 || o.MaxBytesFor(model.StreamAudit) != 512<<20 || o.MaxBytesFor(model.StreamEvents) != natsx.DefaultStreamMaxBytes[model.StreamEvents] {
		t.Errorf("stream sizes %+v", o.MaxBytes)
	}
	if c.NATSMaxStore != 40<<30 || c.MaxRecords != 500 || c.DeviceRate != 5 || c.DeviceBurst != 500 {
		t.Errorf("read %+v", c)
	}
	for name, tt := range map[string]struct {
		env  map[string]string
		want string
	}{
		"unknown stream":       {map[string]string{"CARE_STREAM_MAX_BYTES": "READINGS=1GiB"}, "STREAM=SIZE with STREAM one of CARE_READINGS"},
		"stream size unit":     {map[string]string{"CARE_STREAM_MAX_BYTES": "CARE_READINGS=1GB"}, "write it like 20GiB"},
		"stream size tiny":     {map[string]string{"CARE_STREAM_MAX_BYTES": "CARE_READINGS=1KiB"}, "at least 1MiB"},
		"store below streams":  {map[string]string{"CARE_NATS_MAX_STORE": "10GiB"}, "raise it, or lower CARE_STREAM_MAX_BYTES"},
		"records zero":         {map[string]string{"CARE_MAX_RECORDS": "0"}, "1 to 100000 records"},
		"burst below the cap":  {map[string]string{"CARE_DEVICE_BURST": "999"}, "a burst of at least CARE_MAX_RECORDS"},
		"rate zero":            {map[string]string{"CARE_DEVICE_RATE": "0"}, "at least 1 record/s"},
		"event rate not a num": {map[string]string{"CARE_DEVICE_EVENT_RATE": "fast"}, "whole number"},
		"batch negative":       {map[string]string{"CARE_INGEST_BATCH": "-1"}, "use 0 (off) to 10000 readings"},
		"batch delay zero":     {map[string]string{"CARE_INGEST_BATCH_DELAY": "0s"}, "a delay above 0 and at most 1s"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	// An external NATS is sized by its own max_file_store.
	if _, err := Load(env(map[string]string{"CARE_NATS_URL": "nats://127.0.0.1:4222", "CARE_NATS_MAX_STORE": "100GiB"})); err == nil || !strings.Contains(err.Error(), "max_file_store") {
		t.Errorf("store limit with an external NATS: %v", err)
	}
}
