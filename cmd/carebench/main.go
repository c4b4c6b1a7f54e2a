// Command carebench runs carehub's benchmarks end to end on this machine:
// it starts the real services (Mosquitto with the project's production
// configuration, InfluxDB 1.8, carehub itself), drives them with homesim's
// load mode and prints what it measured. The make targets bench-ingest,
// bench-cluster, bench-alerts, bench-push, bench-api and bench-web call it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: carebench ingest|cluster|alerts|push|api|web|quality|security [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "ingest":
		err = benchIngest(ctx, args[1:], stdout, stderr)
	case "cluster":
		err = benchCluster(ctx, args[1:], stdout, stderr)
	case "alerts":
		err = benchAlerts(ctx, args[1:], stdout, stderr)
	case "push":
		err = benchPush(ctx, args[1:], stdout, stderr)
	case "api":
		err = benchAPI(ctx, args[1:], stdout, stderr)
	case "web":
		err = benchWeb(ctx, args[1:], stdout, stderr)
	case "quality":
		err = benchQuality(ctx, args[1:], stdout, stderr)
	case "security":
		err = benchSecurity(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "carebench: unknown benchmark %q\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "carebench %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
