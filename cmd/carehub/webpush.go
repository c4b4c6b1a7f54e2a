package main

import (
	"fmt"
	"io"

	"github.com/carehub/carehub/internal/webpush"
)

// webpushCommand runs `carehub webpush keys`: it prints a new VAPID key
// pair for CARE_WEBPUSH_VAPID_PUBLIC_KEY / _PRIVATE_KEY. Nothing is stored:
// a key in use must never be replaced silently, because every phone's
// subscription is bound to it (docs/push.md).
func webpushCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "keys" {
		fmt.Fprint(stderr, "usage: carehub webpush keys\n")
		return 2
	}
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		fmt.Fprintf(stderr, "carehub: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# Web Push (VAPID) keys: keep the private key secret (prefer _FILE).\n"+
		"# Changing them later makes every phone subscribe again.\n"+
		"CARE_WEBPUSH_VAPID_PUBLIC_KEY=%s\nCARE_WEBPUSH_VAPID_PRIVATE_KEY=%s\n", pub, priv)
	return 0
}
