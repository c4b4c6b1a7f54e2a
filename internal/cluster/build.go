package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries are the programs a topology runs.
type Binaries struct {
	NATSServer string // nats-server of go.mod's version
	Mosquitto  string
	DynsecLib  string // Mosquitto's dynamic-security plugin
	Influxd    string // InfluxDB 1.8, built by deploy/dev/influxdb.sh
	Carehub    string
	Homesim    string
}

// CacheDir is where the project's scripts keep what they build once:
// $CAREHUB_CACHE, else $XDG_CACHE_HOME/carehub, else ~/.cache/carehub.
func CacheDir() string {
	if c := os.Getenv("CAREHUB_CACHE"); c != "" {
		return c
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "carehub")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "carehub")
}

// RepoRoot finds the module's root from dir upwards (go test runs in the
// package's directory, make at the root).
func RepoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "deploy", "dev", "influxdb.sh")); err == nil {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no carehub repository above %s: run from inside the repository", dir)
		}
	}
}

// Build finds or builds every binary: nats-server of the version go.mod
// pins (Debian's 2.9 lacks what carehub's streams use), cached in
// CacheDir once, built from the Go module cache through the Go proxy only;
// influxd through deploy/dev/influxdb.sh; carehub and homesim from this
// checkout into binDir (go's build cache makes a rebuild cheap).
func Build(ctx context.Context, root, binDir string) (Binaries, error) {
	var b Binaries
	var err error
	if b.NATSServer, err = natsServer(ctx, root); err != nil {
		return b, err
	}
	if b.Mosquitto, err = findMosquitto(); err != nil {
		return b, err
	}
	plugins, _ := filepath.Glob("/usr/lib/*/mosquitto_dynamic_security.so")
	if len(plugins) == 0 {
		return b, fmt.Errorf("mosquitto's dynamic-security plugin is not installed: run deploy/dev/setup.sh (apt-get install mosquitto)")
	}
	b.DynsecLib = plugins[0]
	out, err := run(ctx, root, nil, filepath.Join(root, "deploy", "dev", "influxdb.sh"), "path")
	if err != nil {
		return b, fmt.Errorf("influxd: %w", err)
	}
	b.Influxd = strings.TrimSpace(out)
	if _, err := run(ctx, root, nil, "go", "build", "-o", binDir+"/", "./cmd/carehub", "./cmd/homesim"); err != nil {
		return b, fmt.Errorf("build carehub and homesim: %w", err)
	}
	b.Carehub, b.Homesim = filepath.Join(binDir, "carehub"), filepath.Join(binDir, "homesim")
	return b, nil
}

func natsServer(ctx context.Context, root string) (string, error) {
	const mod = "github.com/nats-io/nats-server/v2"
	out, err := run(ctx, root, nil, "go", "list", "-m", "-f", "{{.Version}}", mod)
	if err != nil {
		return "", fmt.Errorf("nats-server's version in go.mod: %w", err)
	}
	v := strings.TrimSpace(out)
	bin := filepath.Join(CacheDir(), "nats-server-"+v, "nats-server")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	// Built into a temporary name and renamed, so an interrupted build
	// never leaves a broken binary in the cache.
	tmp := bin + ".tmp"
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	if _, err := run(ctx, root, nil, "go", "build", "-o", tmp, mod); err != nil {
		return "", fmt.Errorf("build nats-server %s (once, about a minute): %w", v, err)
	}
	return bin, os.Rename(tmp, bin)
}

func findMosquitto() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("mosquitto is not installed: run deploy/dev/setup.sh (apt-get install mosquitto)")
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}
