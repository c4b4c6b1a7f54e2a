package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/carehub/carehub/internal/config"
	"github.com/carehub/carehub/internal/instances"
)

const instancesUsage = "usage: carehub instances [list | retire <instance id>]\n"

// instancesCommand runs `carehub instances list` (every instance known on
// the NATS carehub uses, up or down) and `carehub instances retire <id>`
// (an instance removed for good: the alert leader ends its MQTT sessions
// and forgets it; refused while it is up). Exit 0: done; 1: refused; 2: it
// could not ask.
func instancesCommand(ctx context.Context, args []string, cfg config.Config, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"list"}
	}
	if !(len(args) == 1 && args[0] == "list") && !(len(args) == 2 && args[0] == "retire") {
		fmt.Fprint(stderr, instancesUsage)
		return 2
	}
	js, closeNATS, err := connectJetStream(cfg, "carehub-instances")
	if err != nil {
		fmt.Fprintf(stderr, "carehub instances: %v\n", err)
		return 2
	}
	defer closeNATS()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if args[0] == "retire" {
		switch err := instances.Retire(ctx, js, args[1]); {
		case errors.Is(err, instances.ErrUnknownInstance), errors.Is(err, instances.ErrInstanceUp):
			fmt.Fprintf(stderr, "carehub instances retire %s: %v\n", args[1], err)
			return 1
		case err != nil:
			fmt.Fprintf(stderr, "carehub instances retire %s: %v\n", args[1], err)
			return 2
		}
		fmt.Fprintf(stdout, "instance %s marked retired: the alert leader ends its MQTT sessions and forgets it (carehub instances list shows when)\n", args[1])
		return 0
	}
	list, err := instances.List(ctx, js)
	if err != nil && !errors.Is(err, instances.ErrUnknownInstance) {
		fmt.Fprintf(stderr, "carehub instances: %v\n", err)
		return 2
	}
	for _, in := range list {
		state := "down"
		if in.Up {
			state = "up"
		}
		if in.Retiring {
			state += ", retiring"
		}
		fmt.Fprintf(stdout, "%s\t%s\n", in.ID, state)
	}
	return 0
}
