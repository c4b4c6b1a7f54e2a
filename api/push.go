package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/carehub/carehub/alerts"
	"github.com/carehub/carehub/internal/audit"
	"github.com/carehub/carehub/internal/notify/phones"
	"github.com/carehub/carehub/internal/users"
)

// PushService is what the API needs of the phones backend
// (notify.Service, issue 13); nil answers 404 push_disabled.
type PushService interface {
	PublicKey() string
	Subscribe(ctx context.Context, userID string, sub phones.Subscription) (phones.Subscription, error)
	Unsubscribe(ctx context.Context, userID, endpoint string) error
	Phones(ctx context.Context, userID string) ([]phones.Subscription, error)
	UseActionToken(ctx context.Context, token, alertID string, authorize func(phones.TokenClaims) error) (phones.TokenClaims, error)
	ReleaseActionToken(ctx context.Context, c phones.TokenClaims) error
	CheckReceiptToken(token, alertID string) (phones.TokenClaims, error)
	Confirm(ctx context.Context, alertID string, seq uint64, subKey, event string) (phones.Receipt, error)
	Receipts(ctx context.Context, alertID string) ([]phones.Receipt, error)
	StalePhones(ctx context.Context, n int) ([]phones.Subscription, error)
}

// ActionTokenHeader carries a notification's action token
// (console.md §3.4): only the push endpoints below read it.
const ActionTokenHeader = "X-Care-Action-Token"

var (
	errPushDisabled = &Error{Status: http.StatusNotFound, Code: "push_disabled", Message: "Web Push is not configured on this server (CARE_WEBPUSH)"}
	errTokenInvalid = &Error{Status: http.StatusUnauthorized, Code: "invalid_action_token", Message: "the action token is not valid for this alert"}
	errTokenExpired = &Error{Status: http.StatusUnauthorized, Code: "action_token_expired", Message: "the action token expired; open the alert to acknowledge it"}
	errTokenUsed    = &Error{Status: http.StatusConflict, Code: "action_token_used", Message: "the action token was already used"}
)

// pushPublicRoutes are the push endpoints a service worker calls without a
// session: the action token is their only credential. They are declared
// before the authenticated group so its bearer check does not run.
func (s *Server) pushPublicRoutes() {
	s.app.Post("/api/v1/push/alerts/:id/ack", s.pushAck)
	s.app.Post("/api/v1/push/receipts", s.pushReceipt)
}

// pushRoutes are the push endpoints of a logged-in user.
func (s *Server) pushRoutes(v1 fiber.Router) {
	staff := s.requireRole(RoleAdmin, RoleCoordinator)
	v1.Get("/push/config", s.pushConfig)
	v1.Get("/push/subscriptions", s.listPhones)
	v1.Post("/push/subscriptions", s.subscribePhone)
	v1.Delete("/push/subscriptions", s.unsubscribePhone)
	v1.Get("/push/phones/stale", staff, s.stalePhones)
	v1.Get("/alerts/:id/receipts", s.alertReceipts)
}

func (s *Server) needPush() error {
	if s.o.Push == nil {
		return errPushDisabled
	}
	return nil
}

// pushConfig: GET /push/config → {"vapid_public_key"} for
// pushManager.subscribe({applicationServerKey}).
func (s *Server) pushConfig(c *fiber.Ctx) error {
	if err := s.needPush(); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"vapid_public_key": s.o.Push.PublicKey()})
}

// subscriptionBody is PushSubscription.toJSON() plus the page's locale.
type subscriptionBody struct {
	Endpoint       string  `json:"endpoint"`
	ExpirationTime *int64  `json:"expirationTime"`
	Keys           subKeys `json:"keys"`
	Locale         string  `json:"locale"`
}

type subKeys struct {
	P256DH string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// subscribePhone: POST /push/subscriptions {endpoint, keys, locale?} →
// 201 phone. The page re-posts on every open; that refreshes last_seen_at.
func (s *Server) subscribePhone(c *fiber.Ctx) error {
	if err := s.needPush(); err != nil {
		return err
	}
	var b subscriptionBody
	if err := decode(c, &b); err != nil {
		return err
	}
	sub, err := s.o.Push.Subscribe(c.UserContext(), principal(c).ID, phones.Subscription{Endpoint: b.Endpoint,
		P256DH: b.Keys.P256DH, Auth: b.Keys.Auth, Locale: b.Locale, UserAgent: c.Get(fiber.HeaderUserAgent)})
	if errors.Is(err, phones.ErrInvalid) {
		return invalid("invalid_subscription", err.Error())
	}
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(phoneView(sub))
}

// unsubscribePhone: DELETE /push/subscriptions {endpoint} → 204.
func (s *Server) unsubscribePhone(c *fiber.Ctx) error {
	if err := s.needPush(); err != nil {
		return err
	}
	var b struct {
		Endpoint string `json:"endpoint"`
	}
	if err := decode(c, &b); err != nil {
		return err
	}
	err := s.o.Push.Unsubscribe(c.UserContext(), principal(c).ID, b.Endpoint)
	if errors.Is(err, phones.ErrNotFound) {
		return ErrNotFound.with("no such subscription")
	}
	if err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// phone is a subscription as the API shows it: never its keys.
type phone struct {
	ID            string `json:"id"`
	UserID        string `json:"user_id"`
	Locale        string `json:"locale"`
	UserAgent     string `json:"user_agent,omitempty"`
	CreatedAt     any    `json:"created_at"`
	LastSeenAt    any    `json:"last_seen_at"`
	LastSuccessAt any    `json:"last_success_at"`
	LastReceiptAt any    `json:"last_receipt_at"`
	Unconfirmed   int    `json:"unconfirmed"`
	Failures      int    `json:"consecutive_failures"`
}

func phoneView(s phones.Subscription) phone {
	return phone{ID: s.Key(), UserID: s.UserID, Locale: s.Locale, UserAgent: s.UserAgent, CreatedAt: s.CreatedAt,
		LastSeenAt: s.LastSeenAt, LastSuccessAt: s.LastSuccessAt, LastReceiptAt: s.LastReceiptAt,
		Unconfirmed: s.Unconfirmed, Failures: s.ConsecutiveFailures}
}

func phoneViews(subs []phones.Subscription) []phone {
	out := make([]phone, 0, len(subs))
	for _, s := range subs {
		out = append(out, phoneView(s))
	}
	return out
}

// listPhones: GET /push/subscriptions → the caller's phones.
func (s *Server) listPhones(c *fiber.Ctx) error {
	if err := s.needPush(); err != nil {
		return err
	}
	subs, err := s.o.Push.Phones(c.UserContext(), principal(c).ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"phones": phoneViews(subs)})
}

// stalePhones: GET /push/phones/stale[?n=3] → phones whose last n pushes
// brought no receipt (staff): a care worker whose phone stopped showing
// alerts is visible before it matters.
func (s *Server) stalePhones(c *fiber.Ctx) error {
	if err := s.needPush(); err != nil {
		return err
	}
	subs, err := s.o.Push.StalePhones(c.UserContext(), c.QueryInt("n", phones.DefaultStaleAfter))
	if err != nil {
		return err
	}
	if err := s.recordEntry(c, audit.Entry{Action: "push.phones.stale", Outcome: OutcomeOK}); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"phones": phoneViews(subs)})
}

// alertReceipts: GET /alerts/{id}/receipts → who was reached for the
// alert, on which phone, how far (sent, accepted, shown, opened, acked).
func (s *Server) alertReceipts(c *fiber.Ctx) error {
	if err := s.needPush(); err != nil {
		return err
	}
	a, err := s.visibleAlert(c)
	if err != nil {
		return err
	}
	if err := s.audit(c, a.ResidentID, "alert.receipts", ""); err != nil {
		return err
	}
	rs, err := s.o.Push.Receipts(c.UserContext(), a.ID)
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []phones.Receipt{}
	}
	return c.JSON(fiber.Map{"alert_id": a.ID, "receipts": rs})
}

func tokenError(err error) error {
	switch {
	case errors.Is(err, phones.ErrTokenExpired):
		return errTokenExpired
	case errors.Is(err, phones.ErrTokenUsed):
		return errTokenUsed
	case errors.Is(err, phones.ErrTokenInvalid):
		return errTokenInvalid
	}
	return err
}

// pushAck: POST /push/alerts/{id}/ack with X-Care-Action-Token → 200
// alert. The notification's acknowledge button: the token names this
// alert, one user and the ack action, and expires after
// phones.ActionTokenLifetime (401). It is checked first, then its user as
// they are now (enabled: else 401; still able to see the resident: else
// 404), and only then spent (a replay is 409): a refused token stays
// usable by its rightful use. An ack that then fails for a reason that may
// pass (a store that did not answer) gives the token back. The ack is made
// and audited as that user, with reason via=push_action.
func (s *Server) pushAck(c *fiber.Ctx) error {
	if err := s.needPush(); err != nil {
		return err
	}
	if err := s.needAlerts(); err != nil {
		return err
	}
	tok := c.Get(ActionTokenHeader)
	if tok == "" {
		return errTokenInvalid.with("the " + ActionTokenHeader + " header is required")
	}
	var (
		p Principal
		a alerts.Alert
	)
	claims, err := s.o.Push.UseActionToken(c.UserContext(), tok, c.Params("id"), func(cl phones.TokenClaims) error {
		var err error
		if p, err = s.actionPrincipal(c, cl.UserID); err != nil {
			return err
		}
		c.Locals(localPrincipal, p)
		a, err = s.visibleAlert(c)
		return err
	})
	if err != nil {
		return tokenError(err)
	}
	out, err := s.pushAckAs(c, a, p)
	if err != nil {
		if !errors.Is(err, alerts.ErrConflict) && !errors.Is(err, alerts.ErrNotFound) && !errors.Is(err, alerts.ErrInvalid) {
			if rerr := s.o.Push.ReleaseActionToken(c.UserContext(), claims); rerr != nil {
				s.log.Warn().Err(rerr).Str("alert_id", a.ID).Msg("action token not released after a failed ack")
			}
		}
		return alertError(err, "invalid_field")
	}
	if claims.Sub != "" {
		if _, err := s.o.Push.Confirm(c.UserContext(), a.ID, claims.Seq, claims.Sub, "acknowledged"); err != nil {
			s.log.Warn().Err(err).Str("alert_id", a.ID).Msg("push receipt not recorded")
		}
	}
	return c.JSON(out)
}

// actionPrincipal is an action token's user as they are now: a removed or
// disabled user's token no longer acts.
func (s *Server) actionPrincipal(c *fiber.Ctx, userID string) (Principal, error) {
	if s.o.Users == nil {
		return Principal{ID: userID, Role: RoleCaregiver}, nil
	}
	u, err := s.o.Users.Get(c.UserContext(), userID)
	if errors.Is(err, users.ErrNotFound) || err == nil && u.Disabled {
		return Principal{}, errTokenInvalid.with("the user of this action token can no longer act")
	}
	if err != nil {
		return Principal{}, ErrUnavailable.with("the user store did not answer; retry later")
	}
	return Principal{ID: u.ID, Role: u.Role, Residents: u.ResidentIDs}, nil
}

// pushAckAs audits and makes the acknowledgement.
func (s *Server) pushAckAs(c *fiber.Ctx, a alerts.Alert, p Principal) (alerts.Alert, error) {
	if err := s.audit(c, a.ResidentID, "alert.ack", "via=push_action"); err != nil {
		return alerts.Alert{}, err
	}
	return s.o.Alerts.Acknowledge(c.UserContext(), a.ID, p.ID, "")
}

// pushReceipt: POST /push/receipts {alert_id, event} with the push's
// action token → 204. The service worker reports a push shown or opened;
// the token proves which push (alert, seq, phone) without spending it.
func (s *Server) pushReceipt(c *fiber.Ctx) error {
	if err := s.needPush(); err != nil {
		return err
	}
	var b struct {
		AlertID string `json:"alert_id"`
		Event   string `json:"event"`
	}
	if err := decode(c, &b); err != nil {
		return err
	}
	if b.Event != "shown" && b.Event != "opened" {
		return invalid("invalid_event", "event must be shown or opened")
	}
	claims, err := s.o.Push.CheckReceiptToken(c.Get(ActionTokenHeader), b.AlertID)
	if err != nil {
		return tokenError(err)
	}
	if claims.Sub == "" {
		return errTokenInvalid
	}
	if _, err := s.o.Push.Confirm(c.UserContext(), b.AlertID, claims.Seq, claims.Sub, b.Event); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}
