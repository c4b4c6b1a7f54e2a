// Package devices is carehub's registry of homes, residents and devices,
// kept in NATS JetStream key-value buckets (no other database), with MQTT
// credentials for devices and their presence (online, last seen, battery).
package devices

import "time"

// Home is a resident's dwelling with its gateway and sensors.
type Home struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"` // a label such as "Unit 302"; never an address in tags
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Resident is a person enrolled in the care program. Name and birth year are
// personal data: they live here only, never in logs or InfluxDB tags.
type Resident struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	HomeID    string `json:"home_id"`
	BirthYear int    `json:"birth_year,omitempty"`
	// Consent is the recorded consent to monitoring (PIPA Art. 23: health
	// data needs separate consent); nil when none was recorded yet.
	Consent   *Consent  `json:"consent,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Device is a sensor in a home, bound to one resident.
type Device struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	ResidentID string    `json:"resident_id"`
	HomeID     string    `json:"home_id"`
	Disabled   bool      `json:"disabled"`
	SecretHash string    `json:"secret_hash"` // slow hash of the MQTT password; the password itself is never stored
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Presence is what carehub last heard from a device.
type Presence struct {
	DeviceID   string    `json:"device_id"`
	HomeID     string    `json:"home_id"`
	Online     bool      `json:"online"`
	LastSeen   time.Time `json:"last_seen"`
	BatteryPct *float64  `json:"battery_pct,omitempty"`
	RSSIdBm    *float64  `json:"rssi_dbm,omitempty"`
	FW         string    `json:"fw,omitempty"`
}
