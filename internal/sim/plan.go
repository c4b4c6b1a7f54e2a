// Package sim simulates the homes carehub watches: residents with a daily
// routine, the devices a real home has (domain.md "Who uses it"), incidents,
// scenarios and outages, as the MQTT messages those devices would send
// (contract §1). The Home model is pure: given a seed and simulated times it
// produces the same messages, so tests drive it with an injected clock. The
// Runner steps homes on a clock and hands their messages to a Transport;
// internal/sim/wire holds what reaches a running carehub (device
// connections, registration, the load and backfill modes).
package sim

import (
	"fmt"
	"math/rand"

	"github.com/carehub/carehub/internal/catalog"
)

// Device roles in a simulated home. A role is a device's place in the home;
// several roles share a catalogue kind (three PIR sensors are all "motion").
const (
	RolePIRLiving  = "pir-living"
	RolePIRKitchen = "pir-kitchen"
	RolePIRBath    = "pir-bath"
	RoleRadar      = "radar-bed"
	RoleDoor       = "door"
	RoleBed        = "bed"
	RoleSmoke      = "smoke"
	RoleGas        = "gas"
	RoleCO         = "co"
	RoleSOS        = "sos"
	RoleWearable   = "wearable"
	RoleBP         = "bp"
	RoleGluco      = "gluco"
	RoleScale      = "scale"
	RoleEnv        = "env"
)

// roleKinds maps each role to its catalogue kind, in the order devices are
// registered and connected.
var roleKinds = []struct{ role, kind string }{
	{RolePIRLiving, catalog.KindMotion},
	{RolePIRKitchen, catalog.KindMotion},
	{RolePIRBath, catalog.KindMotion},
	{RoleRadar, catalog.KindRadar},
	{RoleDoor, catalog.KindDoor},
	{RoleBed, catalog.KindBed},
	{RoleSmoke, catalog.KindSmoke},
	{RoleGas, catalog.KindGas},
	{RoleCO, catalog.KindCO},
	{RoleSOS, catalog.KindSOS},
	{RoleWearable, catalog.KindWearable},
	{RoleBP, catalog.KindBP},
	{RoleGluco, catalog.KindGlucometer},
	{RoleScale, catalog.KindScale},
	{RoleEnv, catalog.KindEnv},
}

// DeviceSpec is one device of a simulated home.
type DeviceSpec struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	Kind string `json:"kind"`
}

// HomeSpec is one simulated home with its resident and devices. Name is a
// generated fake name: it goes to the registry only, never to a log.
type HomeSpec struct {
	Index      int          `json:"index"`
	HomeID     string       `json:"home_id"`
	ResidentID string       `json:"resident_id"`
	Name       string       `json:"name"`
	BirthYear  int          `json:"birth_year"`
	Devices    []DeviceSpec `json:"devices"`
}

// Device returns the home's device with the given role.
func (s HomeSpec) Device(role string) (DeviceSpec, bool) {
	for _, d := range s.Devices {
		if d.Role == role {
			return d, true
		}
	}
	return DeviceSpec{}, false
}

// HasWearable reports whether the resident wears a band; three homes in four
// do (domain.md: "for some a wearable"), home 0 always, so scenarios on
// vitals always have one to play on.
func HasWearable(index int) bool { return index%4 != 3 }

// PlanHomes lays out n homes with deterministic ids under prefix: the same
// prefix and seed give the same ids and fake names, which is what lets a
// restarted homesim find its devices in the state file.
func PlanHomes(prefix string, seed int64, n int) ([]HomeSpec, error) {
	if !catalog.ValidID(prefix) || len(prefix) > 40 {
		return nil, fmt.Errorf("id prefix %q: use at most 40 of [a-z0-9_-], starting with a letter or digit", prefix)
	}
	rng := rand.New(rand.NewSource(seed))
	homes := make([]HomeSpec, 0, n)
	for i := 0; i < n; i++ {
		h := HomeSpec{
			Index:      i,
			HomeID:     fmt.Sprintf("%s-h%04d", prefix, i),
			ResidentID: fmt.Sprintf("%s-r%04d", prefix, i),
			Name:       FakeName(rng),
			BirthYear:  1930 + rng.Intn(26),
		}
		for _, rk := range roleKinds {
			if rk.role == RoleWearable && !HasWearable(i) {
				continue
			}
			h.Devices = append(h.Devices, DeviceSpec{ID: h.HomeID + "-" + rk.role, Role: rk.role, Kind: rk.kind})
		}
		homes = append(homes, h)
	}
	return homes, nil
}

// Syllables for generated names. Combinations are random, so a name may
// coincide with a real person's by chance but is never taken from one.
var (
	familyNames = []string{"Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Jang", "Lim", "Han", "Oh", "Seo", "Shin", "Kwon"}
	givenParts  = []string{"Mi", "Young", "Soon", "Ja", "Ok", "Sun", "Jin", "Hee", "Sook", "Bok", "Chul", "Man", "Gil", "Dong", "Su", "Nam", "Hae", "Kyung"}
)

// FakeName returns a generated Korean-style name.
func FakeName(rng *rand.Rand) string {
	a := givenParts[rng.Intn(len(givenParts))]
	b := givenParts[rng.Intn(len(givenParts))]
	return familyNames[rng.Intn(len(familyNames))] + " " + a + "-" + lower(b)
}

func lower(s string) string {
	out := []byte(s)
	for i, c := range out {
		if c >= 'A' && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return string(out)
}
