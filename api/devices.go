package api

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/catalog"
	"github.com/carehub/carehub/internal/query"
)

// PresenceSource is what the API needs of devices.PresenceTracker.
type PresenceSource interface {
	Presence(deviceID string) (devices.Presence, bool)
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
	q, p := s.query(c)
	id := c.Params("id")
	ds, err := q.Devices(c.UserContext(), p, id)
	if err != nil {
		return queryError(err, "no resident "+truncate(id, 64))
	}
	out := []deviceView{}
	for _, d := range ds {
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
	q, p := s.query(c)
	list, next, err := q.DeviceList(c.UserContext(), p, rid, home, query.Page{After: after, Limit: limit})
	if err != nil {
		return queryError(err, "")
	}
	out := struct {
		Devices    []deviceView `json:"devices"`
		NextCursor string       `json:"next_cursor,omitempty"`
	}{Devices: []deviceView{}, NextCursor: next}
	for _, d := range list {
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

type createDeviceBody struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	ResidentID string `json:"resident_id"`
}

type mqttCredentials struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	TopicPrefix string `json:"topic_prefix"`
}

type deviceCreated struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	ResidentID string          `json:"resident_id"`
	HomeID     string          `json:"home_id"`
	MQTT       mqttCredentials `json:"mqtt"`
}

// createDevice: POST /devices → 201 with the MQTT password, shown only here.
func (s *Server) createDevice(c *fiber.Ctx) error {
	var b createDeviceBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if b.ResidentID == "" {
		return invalidAt("invalid_field", "resident_id", "resident_id is required")
	}
	if _, ok := s.o.Registry.Resident(b.ResidentID); !ok {
		return invalidAt("unknown_resident", "resident_id", "resident %s does not exist: create it first with POST /api/v1/residents", b.ResidentID)
	}
	d, password, err := s.o.Registry.RegisterDevice(c.UserContext(), b.ID, b.Kind, b.ResidentID)
	if err != nil {
		return registryError(err)
	}
	if err := s.audit(c, d.ResidentID, "device.register", ""); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store") // the password must not be cached anywhere
	return c.Status(http.StatusCreated).JSON(deviceCreated{
		ID: d.ID, Kind: d.Kind, ResidentID: d.ResidentID, HomeID: d.HomeID,
		MQTT: mqttCredentials{Username: d.ID, Password: password, TopicPrefix: "care/v1/dev/" + d.ID + "/"},
	})
}
