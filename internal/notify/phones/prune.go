package phones

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPruneAfter is how long a phone may go unseen before its
// subscription is dropped (CARE_WEBPUSH_PRUNE_DAYS).
const DefaultPruneAfter = 60 * 24 * time.Hour

// LastSign is the last time the phone itself showed it is in use: its
// subscription (re)posted on an app open, or a receipt it sent (shown,
// opened, acknowledged). A push service accepting a push proves nothing
// about the phone (it keeps pushes for phones that are switched off or
// gone), so LastSuccessAt does not count.
func (s Subscription) LastSign() time.Time {
	t := s.CreatedAt
	if s.LastSeenAt.After(t) {
		t = s.LastSeenAt
	}
	if s.LastReceiptAt != nil && s.LastReceiptAt.After(t) {
		t = *s.LastReceiptAt
	}
	return t
}

// Prune deletes the subscriptions whose phone has shown no sign of use
// (LastSign) for unseenFor, and returns them. Each is read again and
// deleted only at the revision read, so a phone that re-posts its
// subscription meanwhile keeps it.
func (s *Store) Prune(ctx context.Context, unseenFor time.Duration) ([]Subscription, error) {
	if unseenFor <= 0 {
		return nil, nil
	}
	cutoff := s.now().Add(-unseenFor)
	var pruned []Subscription
	for _, cand := range s.list("") {
		if cand.LastSign().After(cutoff) {
			continue
		}
		e, err := s.subs.Get(ctx, cand.Key())
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return pruned, err
		}
		var sub Subscription
		if json.Unmarshal(e.Value(), &sub) != nil || sub.LastSign().After(cutoff) {
			continue
		}
		err = s.subs.Delete(ctx, sub.Key(), jetstream.LastRevision(e.Revision()))
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			s.apply(sub.Key(), nil, true)
			pruned = append(pruned, sub)
		case errors.Is(err, jetstream.ErrKeyExists),
			errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence:
			// Re-posted since it was read: the phone is in use.
		default:
			return pruned, err
		}
	}
	return pruned, nil
}
