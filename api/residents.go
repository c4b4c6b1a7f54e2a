package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/devices"
)

func strictUnmarshal(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// registryError maps the registry's typed errors to the catalogue.
func registryError(err error) error {
	switch {
	case errors.Is(err, devices.ErrNotFound):
		return ErrNotFound.with(err.Error())
	case errors.Is(err, devices.ErrConflict):
		return ErrConflict.with(err.Error())
	case errors.Is(err, devices.ErrInvalid):
		return invalid("invalid_field", err.Error())
	case errors.Is(err, devices.ErrReservedID):
		return &Error{Status: http.StatusConflict, Code: "device_id_reserved", Message: err.Error() + "; choose another id"}
	case errors.Is(err, devices.ErrAccountTaken):
		return &Error{Status: http.StatusConflict, Code: "broker_account_exists", Message: err.Error() + "; choose another id"}
	case errors.Is(err, devices.ErrBroker):
		return ErrUnavailable.with(err.Error() + "; try again")
	}
	return err
}

type createResidentBody struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	HomeID    string `json:"home_id"`
	BirthYear int    `json:"birth_year"`
}

// createResident: POST /residents {"id"?, "name", "home_id", "birth_year"?} → 201 resident.
func (s *Server) createResident(c *fiber.Ctx) error {
	var b createResidentBody
	if err := decode(c, &b); err != nil {
		return err
	}
	r, err := s.o.Registry.CreateResident(c.UserContext(), devices.Resident{ID: b.ID, Name: b.Name, HomeID: b.HomeID, BirthYear: b.BirthYear})
	if err != nil {
		return registryError(err)
	}
	if err := s.audit(c, r.ID, "resident.create", ""); err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(r)
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
		return invalid("invalid_field", "resident_id is required")
	}
	if _, ok := s.o.Registry.Resident(b.ResidentID); !ok {
		return invalid("unknown_resident", "resident "+b.ResidentID+" does not exist: create it first with POST /api/v1/residents")
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
