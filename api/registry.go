package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/catalog"
)

// PresenceSource is what the API needs of devices.PresenceTracker.
type PresenceSource interface {
	Presence(deviceID string) (devices.Presence, bool)
}

// ChainStore is what the API needs of alerts.KVChains.
type ChainStore interface {
	Chain(ctx context.Context, residentID string) (alerts.EscalationChain, error)
	Put(ctx context.Context, ch alerts.EscalationChain) error
}

type residentsPage struct {
	Residents  []devices.Resident `json:"residents"`
	NextCursor string             `json:"next_cursor,omitempty"`
}

// listResidents: GET /residents?home_id=&limit=&cursor= → the residents
// the caller may see, by id; cursor is the last id of the previous page.
func (s *Server) listResidents(c *fiber.Ctx) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	home, after := c.Query("home_id"), c.Query("cursor")
	if after != "" && !catalog.ValidID(after) {
		return badRequest("invalid_cursor", "cursor is not one this API returned; start again without it")
	}
	out := residentsPage{Residents: []devices.Resident{}}
	for _, r := range s.o.Registry.Residents() { // sorted by id
		if r.ID <= after || (home != "" && r.HomeID != home) || !s.canSee(c, r.ID) {
			continue
		}
		if len(out.Residents) == limit {
			out.NextCursor = out.Residents[limit-1].ID
			break
		}
		out.Residents = append(out.Residents, r)
	}
	// Recorded once the page is known: which residents it disclosed.
	ids := make([]string, len(out.Residents))
	for i, r := range out.Residents {
		ids[i] = r.ID
	}
	if err := s.auditDisclosed(c, "residents.list", ids); err != nil {
		return err
	}
	return c.JSON(out)
}

// getResident: GET /residents/{id}.
func (s *Server) getResident(c *fiber.Ctx) error {
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	if err := s.audit(c, r.ID, "resident.read", ""); err != nil {
		return err
	}
	// The ETag is the KV revision, which PATCH checks (resident_edit.go).
	if cur, rev, ok := s.o.Registry.ResidentRevision(r.ID); ok {
		r = cur
		c.Set(fiber.HeaderETag, residentETag(rev))
	}
	return c.JSON(r)
}

// deviceView is a device with its health, never its secret hash.
type deviceView struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	ResidentID string     `json:"resident_id"`
	HomeID     string     `json:"home_id"`
	Disabled   bool       `json:"disabled"`
	Online     bool       `json:"online"`
	LastSeen   *time.Time `json:"last_seen"`
	BatteryPct *float64   `json:"battery_pct"`
	RSSIdBm    *float64   `json:"rssi_dbm,omitempty"`
	FW         string     `json:"fw,omitempty"`
}

func (s *Server) viewDevice(d devices.Device) deviceView {
	v := deviceView{ID: d.ID, Kind: d.Kind, ResidentID: d.ResidentID, HomeID: d.HomeID, Disabled: d.Disabled}
	if s.o.Presence != nil {
		if p, ok := s.o.Presence.Presence(d.ID); ok {
			v.Online, v.BatteryPct, v.RSSIdBm, v.FW = p.Online, p.BatteryPct, p.RSSIdBm, p.FW
			if !p.LastSeen.IsZero() {
				t := p.LastSeen.UTC()
				v.LastSeen = &t
			}
		}
	}
	return v
}

// residentDevices: GET /residents/{id}/devices → the resident's devices
// with health (online, last_seen, battery).
func (s *Server) residentDevices(c *fiber.Ctx) error {
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	if err := s.audit(c, r.ID, "devices.read", ""); err != nil {
		return err
	}
	out := []deviceView{}
	for _, d := range s.o.Registry.Devices(func(d devices.Device) bool { return d.ResidentID == r.ID }) {
		out = append(out, s.viewDevice(d))
	}
	return c.JSON(fiber.Map{"devices": out})
}

// listDevices: GET /devices?resident_id=&home_id=&limit=&cursor= (staff).
func (s *Server) listDevices(c *fiber.Ctx) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	rid, home, after := c.Query("resident_id"), c.Query("home_id"), c.Query("cursor")
	if after != "" && !catalog.ValidID(after) {
		return badRequest("invalid_cursor", "cursor is not one this API returned; start again without it")
	}
	if err := s.audit(c, rid, "devices.list", ""); err != nil {
		return err
	}
	list := s.o.Registry.Devices(func(d devices.Device) bool {
		return d.ID > after && (rid == "" || d.ResidentID == rid) && (home == "" || d.HomeID == home)
	})
	out := struct {
		Devices    []deviceView `json:"devices"`
		NextCursor string       `json:"next_cursor,omitempty"`
	}{Devices: []deviceView{}}
	for _, d := range list {
		if len(out.Devices) == limit {
			out.NextCursor = out.Devices[limit-1].ID
			break
		}
		out.Devices = append(out.Devices, s.viewDevice(d))
	}
	return c.JSON(out)
}

// disableDevice: POST /devices/{id}/disable and /enable (staff). A
// disabled device can no longer log in and its messages are rejected.
func (s *Server) disableDevice(disabled bool) fiber.Handler {
	action := "device.enable"
	if disabled {
		action = "device.disable"
	}
	return func(c *fiber.Ctx) error {
		d, ok := s.o.Registry.Device(c.Params("id"))
		if !ok {
			return ErrNotFound.with("no device " + truncate(c.Params("id"), 64))
		}
		if err := s.audit(c, d.ResidentID, action, ""); err != nil {
			return err
		}
		d, err := s.o.Registry.SetDeviceDisabled(c.UserContext(), d.ID, disabled)
		if err != nil {
			return registryError(err)
		}
		return c.JSON(s.viewDevice(d))
	}
}

// rotateCredentials: POST /devices/{id}/rotate-credentials (staff) → the
// new MQTT password, shown only here; the old one stops working at once.
func (s *Server) rotateCredentials(c *fiber.Ctx) error {
	d, ok := s.o.Registry.Device(c.Params("id"))
	if !ok {
		return ErrNotFound.with("no device " + truncate(c.Params("id"), 64))
	}
	if err := s.audit(c, d.ResidentID, "device.rotate_credentials", ""); err != nil {
		return err
	}
	d, password, err := s.o.Registry.RotateCredentials(c.UserContext(), d.ID)
	if err != nil {
		return registryError(err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(deviceCreated{ID: d.ID, Kind: d.Kind, ResidentID: d.ResidentID, HomeID: d.HomeID,
		MQTT: mqttCredentials{Username: d.ID, Password: password, TopicPrefix: "care/v1/dev/" + d.ID + "/"}})
}

// SettingsStore is what the API needs of alerts.SettingsStore: the
// resident's rule settings from memory, and a validated write.
type SettingsStore interface {
	Settings(residentID string) rules.Settings
	Put(ctx context.Context, residentID string, st rules.Settings) error
	// Update changes the stored settings atomically (read, change, write
	// only if nobody wrote in between); an error from change aborts.
	Update(ctx context.Context, residentID string, change func(*rules.Settings) error) (rules.Settings, error)
}

func (s *Server) needSettings() error {
	if s.o.Settings == nil {
		return ErrUnavailable.with("rule settings are not configured on this instance")
	}
	return nil
}

// settingsETag is a strong ETag of settings' content: the store keeps no
// revision the API could see, and equal content is the same representation.
func settingsETag(st rules.Settings) string {
	b, _ := json.Marshal(st)
	h := sha256.Sum256(b)
	return `"` + hex.EncodeToString(h[:12]) + `"`
}

// getSettings: GET /residents/{id}/settings → the resident's rule settings
// (defaults when none are stored) with an ETag.
func (s *Server) getSettings(c *fiber.Ctx) error {
	if err := s.needSettings(); err != nil {
		return err
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	if err := s.audit(c, r.ID, "settings.read", ""); err != nil {
		return err
	}
	st := s.o.Settings.Settings(r.ID)
	c.Set(fiber.HeaderETag, settingsETag(st))
	return c.JSON(st)
}

// putSettings: PUT /residents/{id}/settings (staff) replaces the rule
// settings, validated by rules.Settings.Validate (422 with its message).
// Durations are Go duration strings ("90s", "8h"), each at least its rule's
// floor; a bare number other than 0 is a 422 naming the field.
// With If-Match the write happens only if the settings are still the ones
// the client read (412 otherwise). The check and the write are not one
// atomic step; two coordinators editing within the same millisecond can
// still race.
func (s *Server) putSettings(c *fiber.Ctx) error {
	if err := s.needSettings(); err != nil {
		return err
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	// Durations are Go duration strings; a bare number (nanoseconds) is
	// refused with the field named, before decoding would accept it.
	if err := rules.CheckDurationSyntax(c.Body()); err != nil {
		return invalid("invalid_settings", err.Error())
	}
	var b rules.Settings
	if err := decode(c, &b); err != nil {
		return err
	}
	if err := b.Validate(); err != nil {
		return invalid("invalid_settings", err.Error())
	}
	if b.Mode != "" && strings.TrimSpace(b.ModeReason) == "" {
		return invalid("invalid_settings", "mode_reason: required with a mode (suppression is audited with its reason)")
	}
	if err := modeReasonOK(b.ModeReason); err != nil {
		return err
	}
	if b.Mode != "" && (b.ModeUntil.IsZero() || b.ModeUntil.After(s.o.Clock())) {
		if b.ModeUntil, err = modeEnd(b.Mode, b.ModeUntil, s.o.Clock()); err != nil {
			return err
		}
	}
	m := c.Get(fiber.HeaderIfMatch)
	stale := func(cur rules.Settings) bool { return m != "" && m != "*" && m != settingsETag(cur) }
	if stale(s.o.Settings.Settings(r.ID)) {
		return ErrPrecondition // before auditing: nothing was changed
	}
	if err := s.audit(c, r.ID, "settings.update", b.ModeReason); err != nil {
		return err
	}
	// The If-Match check and the write are one atomic step: a write by
	// someone else in between makes the check run again on what they wrote.
	out, err := s.o.Settings.Update(c.UserContext(), r.ID, func(cur *rules.Settings) error {
		if stale(*cur) {
			return ErrPrecondition
		}
		nb := b
		if nb.Mode != "" && (nb.Mode != cur.Mode || nb.ModeBy == "") {
			nb.ModeBy = principal(c).ID
		}
		if nb.Mode == "" {
			nb.ModeReason, nb.ModeBy, nb.ModeUntil = "", "", time.Time{}
		}
		*cur = nb
		return nil
	})
	if errors.Is(err, ErrPrecondition) {
		return ErrPrecondition
	}
	if err != nil {
		return alertError(err, "invalid_settings")
	}
	c.Set(fiber.HeaderETag, settingsETag(out))
	return c.JSON(out)
}

type statusBody struct {
	Mode   string     `json:"mode"` // away, hospital, quiet, or "" / "none" to clear
	Reason string     `json:"reason"`
	Until  *time.Time `json:"until"`
}

type statusView struct {
	ResidentID string     `json:"resident_id"`
	Mode       string     `json:"mode"`
	Reason     string     `json:"reason,omitempty"`
	By         string     `json:"by,omitempty"`
	Until      *time.Time `json:"until"`
	Active     bool       `json:"active"`
}

func (s *Server) viewStatus(rid string, st rules.Settings) statusView {
	v := statusView{ResidentID: rid, Mode: st.Mode, Reason: st.ModeReason, By: st.ModeBy}
	if v.Mode == "" {
		v.Mode = "none"
	}
	if !st.ModeUntil.IsZero() {
		t := st.ModeUntil.UTC()
		v.Until = &t
	}
	v.Active = st.Mode != "" && (st.ModeUntil.IsZero() || s.o.Clock().Before(st.ModeUntil))
	return v
}

// getStatus: GET /residents/{id}/status → the resident's mode.
func (s *Server) getStatus(c *fiber.Ctx) error {
	if err := s.needSettings(); err != nil {
		return err
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	if err := s.audit(c, r.ID, "status.read", ""); err != nil {
		return err
	}
	return c.JSON(s.viewStatus(r.ID, s.o.Settings.Settings(r.ID)))
}

// putStatus: PUT /residents/{id}/status {"mode", "reason", "until"?} puts
// a resident in away, hospital or quiet mode (a care worker's visit), which
// pauses the activity rules (domain.md "Suppression with a reason, always
// audited"); mode "none" ends it. A caregiver may set it for their own
// residents: they are the ones who visit.
func (s *Server) putStatus(c *fiber.Ctx) error {
	if err := s.needSettings(); err != nil {
		return err
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	var b statusBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if b.Mode == "none" {
		b.Mode = ""
	}
	switch b.Mode {
	case "", rules.ModeAway, rules.ModeHospital, rules.ModeQuiet:
	default:
		return invalid("invalid_mode", "mode must be one of away, hospital, quiet, none")
	}
	b.Reason = strings.TrimSpace(b.Reason)
	if b.Mode != "" && b.Reason == "" {
		return invalid("invalid_reason", "reason is required: a suppression is audited with its reason")
	}
	if len(b.Reason) > maxNoteBytes {
		return invalid("invalid_reason", "reason longer than "+strconv.Itoa(maxNoteBytes)+" bytes")
	}
	if b.Until != nil && !b.Until.After(s.o.Clock()) {
		return invalid("invalid_time", "until must be in the future")
	}
	if err := modeReasonOK(b.Reason); err != nil {
		return err
	}
	var until time.Time
	if b.Until != nil {
		until = *b.Until
	}
	if until, err = modeEnd(b.Mode, until, s.o.Clock()); err != nil {
		return err
	}
	if !until.IsZero() {
		b.Until = &until
	}
	if err := s.audit(c, r.ID, "status.set", b.Mode+": "+b.Reason); err != nil {
		return err
	}
	st, err := s.o.Settings.Update(c.UserContext(), r.ID, func(st *rules.Settings) error {
		st.Mode, st.ModeReason, st.ModeBy, st.ModeUntil = b.Mode, b.Reason, principal(c).ID, time.Time{}
		if b.Until != nil {
			st.ModeUntil = b.Until.UTC()
		}
		if b.Mode == "" {
			st.ModeReason, st.ModeBy = "", ""
		}
		return nil
	})
	if err != nil {
		return alertError(err, "invalid_settings")
	}
	return c.JSON(s.viewStatus(r.ID, st))
}

// getChain: GET /residents/{id}/escalation → the escalation chain (the
// default one when none is stored).
func (s *Server) getChain(c *fiber.Ctx) error {
	if s.o.Chains == nil {
		return ErrUnavailable.with("escalation chains are not configured on this instance")
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	if err := s.audit(c, r.ID, "escalation.read", ""); err != nil {
		return err
	}
	ch, err := s.o.Chains.Chain(c.UserContext(), r.ID)
	if err != nil {
		return err
	}
	return c.JSON(ch)
}

type chainBody struct {
	Tiers []alerts.Tier `json:"tiers"`
}

// putChain: PUT /residents/{id}/escalation {"tiers": [...]} (staff).
func (s *Server) putChain(c *fiber.Ctx) error {
	if s.o.Chains == nil {
		return ErrUnavailable.with("escalation chains are not configured on this instance")
	}
	r, err := s.visibleResident(c)
	if err != nil {
		return err
	}
	var b chainBody
	if err := decode(c, &b); err != nil {
		return err
	}
	ch := alerts.EscalationChain{ResidentID: r.ID, Tiers: b.Tiers}
	if err := ch.Validate(); err != nil {
		return invalid("invalid_chain", err.Error())
	}
	if err := s.audit(c, r.ID, "escalation.update", ""); err != nil {
		return err
	}
	if err := s.o.Chains.Put(c.UserContext(), ch); err != nil {
		return alertError(err, "invalid_chain")
	}
	return c.JSON(ch)
}
