package api

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// openapiJSON is the OpenAPI 3 description of /api/v1, kept next to the
// code; TestOpenAPICoversRoutes fails when a route is missing from it or it
// describes a route that does not exist.
//
//go:embed openapi.json
var openapiJSON []byte

// openapi: GET /api/v1/openapi.json (no authentication: it holds no data).
func (s *Server) openapi(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(openapiJSON)
}
