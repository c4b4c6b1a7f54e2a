package influx

import "testing"

// TestLoopback: queries ask for a plain answer only from this machine's
// InfluxDB; across a network the gzip-ed answer is worth its CPU.
func TestLoopback(t *testing.T) {
	for u, want := range map[string]bool{
		"http://127.0.0.1:8086": true, "http://localhost:8086/": true, "http://[::1]:8086": true, "http://127.3.2.1": true,
		"http://10.0.0.5:8086": false, "https://influx.example.org": false, "http://localhost.example.org": false, "::": false,
	} {
		if got := loopback(u); got != want {
			t.Errorf("loopback(%q) = %v, want %v", u, got, want)
		}
	}
}
