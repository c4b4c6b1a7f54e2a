package kv

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// WrongRevision reports whether a KV Update failed because the key was
// written since the revision it named (another writer won): the caller
// reads again and retries.
func WrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
