// Command carehub runs the smart-care backend: MQTT ingest, alert rules and
// the HTTP API in one process (contract §5).
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" // served only when CARE_PPROF_ADDR is set
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"
	_ "time/tzdata" // Asia/Seoul must resolve on machines without a zoneinfo database

	"github.com/carehub/carehub/internal/app"
	"github.com/carehub/carehub/internal/config"
	"github.com/carehub/carehub/internal/logging"
	"github.com/carehub/carehub/internal/procs"
	"github.com/carehub/carehub/internal/redact"
)

// version is set by the linker for releases.
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `carehub — smart-care home monitoring backend

usage:
  carehub serve      run ingest, alerts and the API (configured by CARE_* variables)
  carehub check      validate the configuration and exit
  carehub audit verify
                     check the audit trail's hash chain (CARE_AUDIT on the
                     NATS carehub uses); exit 1 names the first broken link
  carehub instances [list | retire <id>]
                     the instances sharing this NATS, up or down; retire
                     one removed for good (its MQTT sessions are ended)
  carehub webpush keys
                     print a new VAPID key pair for Web Push
  carehub version    print the version

Configuration is read from the environment; see docs/configuration.md.
With neither CARE_MQTT_URL nor CARE_NATS_URL set, carehub runs its own MQTT
broker and NATS server, so a single binary plus InfluxDB is a working install.
`

// run is main without the process: it is table-tested.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "carehub", version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "webpush":
		return webpushCommand(args[1:], stdout, stderr)
	case "check", "serve", "audit", "instances":
	default:
		fmt.Fprintf(stderr, "carehub: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "carehub: the configuration is not valid:\n%v\n", err)
		return 2
	}
	if args[0] == "check" {
		fmt.Fprintln(stdout, "configuration ok")
		return 0
	}
	if args[0] == "audit" {
		return auditCommand(ctx, args[1:], cfg, stdout, stderr)
	}
	if args[0] == "instances" {
		return instancesCommand(ctx, args[1:], cfg, stdout, stderr)
	}
	log := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)
	applyMemoryLimit(getenv, cfg.MemoryLimit)
	if cfg.AdaptiveProcs && getenv("GOMAXPROCS") == "" {
		go procs.Run(ctx, time.Second, log)
	}
	if addr := cfg.PprofAddr; addr != "" {
		// Profiling for operators chasing a hot spot; config.Validate
		// refuses any address but loopback.
		go func() { log.Warn().Err(http.ListenAndServe(addr, nil)).Msg("pprof listener stopped") }()
	}
	a, err := app.Start(ctx, cfg, log, stdout)
	if err != nil {
		log.Error().Err(redact.Err(err)).Msg("carehub could not start")
		return 1
	}
	if err := a.Wait(ctx); err != nil {
		return 1
	}
	log.Info().Msg("carehub stopped")
	return 0
}

// applyMemoryLimit sets the runtime's soft memory limit to CARE_MEMORY_LIMIT
// unless GOMEMLIMIT is set: the runtime applied that one itself, and the
// operator who wrote it meant it.
func applyMemoryLimit(getenv func(string) string, limit int64) {
	if getenv("GOMEMLIMIT") == "" && limit > 0 {
		debug.SetMemoryLimit(limit)
	}
}
