package metrics

// representative builds a registry with one of each kind carehub uses, with
// values that exercise formatting: label escaping, labels declared out of
// name order, an integer-valued and a fractional counter, a histogram with
// and without labels, observations on a bucket edge and above the last one.
func representative() *Registry {
	r := New()
	rej := r.Counter("carehub_ingest_rejected_total", "Rejected device input by reason (contract §1).", "reason")
	rej.With("out_of_range").Add(2)
	rej.With("unknown_metric").Inc()
	rej.With(`a "quoted" \ value` + "\n").Inc()
	msgs := r.Counter("carehub_ingest_messages_total", "MQTT messages by topic kind and outcome (accepted, partial, rejected).", "kind", "outcome")
	msgs.With("telemetry", "accepted").Add(1500)
	msgs.With("event", "rejected")
	tr := r.Counter("carehub_alert_transitions_total", "Alert transitions committed, by transition and severity.", "transition", "severity")
	tr.With("opened", "high").Inc()
	r.Counter("carehub_ingest_values_total", "Telemetry values accepted.").With().Add(0.5)
	pend := r.Gauge("carehub_jetstream_pending", "Messages of the stream not yet stored by the InfluxDB writer (pending + unacked).", "stream")
	pend.With("CARE_READINGS").Set(42)
	pend.With("CARE_EVENTS").Set(-1.25)
	r.GaugeFunc("carehub_alerts_open", "Alerts open or acknowledged.", func() float64 { return 7 })
	lat := r.Histogram("carehub_http_request_seconds", "HTTP request latency by route.", DefBuckets, "route")
	lat.With("/api/v1/residents").Observe(0.003)
	lat.With("/api/v1/residents").Observe(0.25)
	lat.With("/api/v1/residents").Observe(45)
	pts := r.Histogram("carehub_influx_batch_points", "Points per batch handed to InfluxDB.", []float64{5000, 1, 100, 1e6})
	pts.With().Observe(1)
	pts.With().Observe(250)
	return r
}
