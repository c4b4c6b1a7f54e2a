// Command homesim simulates the homes carehub watches, load-tests it and
// backfills history, talking to carehub only through its public contract:
// the HTTP API to register residents and devices (contract §4) and MQTT as
// the devices themselves (contract §1). See run.go for the modes and flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
