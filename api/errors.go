package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts/rules"
	"github.com/carehub/carehub/devices"
)

// Error is an API error with a stable code (contract §4): clients branch on
// Code, people read Message.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Fields names each field at fault in a refused body, where the
	// validation can (alert settings, escalation chains, modes, the
	// registry's bodies): the field's dotted path, a fixed
	// English reason with fmt verbs and its values apart, so that a client
	// can point at the field and say why in its own language. Message says
	// the same in English.
	Fields []rules.Problem `json:"fields,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// StatusCode is the HTTP status the error answers with (for the console,
// which shows it as a page).
func (e *Error) StatusCode() int { return e.Status }

// The error catalogue. Codes never change meaning; new ones may be added.
var (
	ErrUnauthorized   = &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "a valid bearer token is required"}
	ErrForbidden      = &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "your role may not do this"}
	ErrNotFound       = &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such resource"}
	ErrConflict       = &Error{Status: http.StatusConflict, Code: "conflict", Message: "the resource already exists or changed"}
	ErrPrecondition   = &Error{Status: http.StatusPreconditionFailed, Code: "precondition_failed", Message: "the resource changed since you read it (If-Match); read it again"}
	ErrBodyTooLarge   = &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: "the request body is too large"}
	ErrRateLimited    = &Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: "too many requests; retry later"}
	ErrUnavailable    = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "a backing service is unavailable; retry later"}
	ErrMalformedJSON  = &Error{Status: http.StatusBadRequest, Code: "malformed_json", Message: "the request body is not valid JSON"}
	ErrInternal       = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	ErrRouteNotFound  = &Error{Status: http.StatusNotFound, Code: "route_not_found", Message: "no such endpoint"}
	ErrMethodNotAllow = &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed on this endpoint"}
)

// invalid is a 422 with a message naming the field and what is accepted.
func invalid(code, msg string) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Code: code, Message: msg}
}

// invalidFields is invalid with the fields err names (rules.Problems).
func invalidFields(code string, err error) *Error {
	e := invalid(code, err.Error())
	e.Fields = rules.Problems(err)
	for i := range e.Fields {
		if e.Fields[i].Args == nil {
			e.Fields[i].Args = []any{} // [], not null: the field is required
		}
	}
	return e
}

// invalidAt is invalid with the one body field at fault, so that a client
// can point at it and say why in its own language: the message is reason
// with args, and Fields carries them apart (rules.Problem).
func invalidAt(code, field, reason string, args ...any) *Error {
	if args == nil {
		args = []any{}
	}
	e := invalid(code, fmt.Sprintf(reason, args...))
	e.Fields = []rules.Problem{{Field: field, Reason: reason, Args: args}}
	return e
}

// badRequest is a 400 for query parameters that cannot be parsed.
func badRequest(code, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: msg}
}

// with returns a copy of e with another message.
func (e *Error) with(msg string) *Error {
	c := *e
	c.Message = msg
	return &c
}

// errorHandler maps every error to the contract's JSON shape, once.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	var ae *Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &fe):
		switch fe.Code {
		case http.StatusNotFound:
			ae = ErrRouteNotFound
		case http.StatusMethodNotAllowed:
			ae = ErrMethodNotAllow
		case http.StatusRequestEntityTooLarge:
			ae = ErrBodyTooLarge
		case http.StatusBadRequest:
			ae = badRequest("bad_request", fe.Message)
		default:
			ae = &Error{Status: fe.Code, Code: "http_error", Message: fe.Message}
		}
	default:
		s.log.Error().Err(err).Str("path", c.Path()).Msg("request failed")
		ae = ErrInternal
	}
	return c.Status(ae.Status).JSON(fiber.Map{"error": ae})
}

// registryError maps the registry's typed errors to the catalogue.
func registryError(err error) error {
	switch {
	case errors.Is(err, devices.ErrNotFound):
		return ErrNotFound.with(err.Error())
	case errors.Is(err, devices.ErrConflict):
		return ErrConflict.with(err.Error())
	case errors.Is(err, devices.ErrInvalid):
		e := invalid("invalid_field", err.Error())
		if fe := (devices.FieldError{}); errors.As(err, &fe) {
			args := fe.Args
			if args == nil {
				args = []any{}
			}
			e.Fields = []rules.Problem{{Field: fe.Field, Reason: fe.Reason, Args: args}}
		}
		return e
	case errors.Is(err, devices.ErrReservedID):
		return &Error{Status: http.StatusConflict, Code: "device_id_reserved", Message: err.Error() + "; choose another id"}
	case errors.Is(err, devices.ErrAccountTaken):
		return &Error{Status: http.StatusConflict, Code: "broker_account_exists", Message: err.Error() + "; choose another id"}
	case errors.Is(err, devices.ErrBroker):
		return ErrUnavailable.with(err.Error() + "; try again")
	}
	return err
}
