// Package archtest holds the seams of carehub's layout as tests: which package
// may import which, and how large a package or a file may grow before it is
// split. It reads the import clauses of the module's own source, so it needs
// neither the go tool nor a network.
package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/carehub/carehub"

// forbidden lists imports that would undo the layout: the key may not depend,
// directly or through another package, on any of its values.
var forbidden = map[string][]string{
	// api speaks HTTP; it is handed what it needs and knows nothing of how
	// NATS is set up or how carehub is configured.
	"api": {"internal/natsx", "internal/config"},
	// alerts evaluates and keeps alert state; streams are declared in one place.
	"alerts": {"internal/natsx"},
	// the broker authenticates with a function it is given, not the registry.
	"internal/mqttbroker": {"devices"},
	// the intake validates and publishes; storing is the writer's job.
	"ingest": {"writer", "internal/influx", "github.com/influxdata/influxdb-client-go/v2"},
	// decoding device payloads is pure: no broker, no NATS, no store.
	"ingest/decode": {"github.com/nats-io/nats.go", "github.com/eclipse/paho.mqtt.golang", "writer", "internal/influx", "github.com/influxdata/influxdb-client-go/v2"},
}

// Size limits in non-test lines. api is a set of HTTP handlers, one file per
// resource, and may be larger as a package.
const (
	maxPackageLines = 1500
	maxFileLines    = 800
)

var packageLimitExempt = []string{"api", "cmd/carebench"}

type pkg struct {
	imports []string // full import paths, test files excluded
	lines   int
	files   map[string]int
}

func load(t *testing.T) map[string]*pkg {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", root, err)
	}
	pkgs := map[string]*pkg{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		rel = filepath.ToSlash(rel)
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, p, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		k := pkgs[rel]
		if k == nil {
			k = &pkg{files: map[string]int{}}
			pkgs[rel] = k
		}
		for _, im := range f.Imports {
			ip, _ := strconv.Unquote(im.Path.Value)
			if !slices.Contains(k.imports, ip) {
				k.imports = append(k.imports, ip)
			}
		}
		n := strings.Count(string(src), "\n")
		k.lines += n
		k.files[path.Join(rel, name)] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// deps returns every import reachable from the package at rel, as paths
// relative to the module for its own packages and full paths otherwise.
func deps(pkgs map[string]*pkg, rel string) map[string][]string {
	seen := map[string][]string{} // dependency -> one chain that reaches it
	var walk func(from string, chain []string)
	walk = func(from string, chain []string) {
		k := pkgs[from]
		if k == nil {
			return
		}
		for _, ip := range k.imports {
			r := ip
			if ip == module || strings.HasPrefix(ip, module+"/") {
				r = strings.TrimPrefix(strings.TrimPrefix(ip, module), "/")
			}
			if _, ok := seen[r]; ok {
				continue
			}
			c := append(slices.Clone(chain), r)
			seen[r] = c
			walk(r, c)
		}
	}
	walk(rel, []string{rel})
	return seen
}

func TestImportSeams(t *testing.T) {
	pkgs := load(t)
	for from, bans := range forbidden {
		if pkgs[from] == nil {
			t.Errorf("package %s not found: update the seams", from)
			continue
		}
		// the package and everything under it (ingest/mqttsub is allowed its
		// own imports only where listed; sub-packages are checked separately)
		d := deps(pkgs, from)
		for _, ban := range bans {
			for dep, chain := range d {
				if dep == ban || strings.HasPrefix(dep, ban+"/") {
					t.Errorf("%s depends on %s: %s", from, dep, strings.Join(chain, " → "))
				}
			}
		}
	}
}

func TestSizes(t *testing.T) {
	pkgs := load(t)
	for rel, k := range pkgs {
		if k.lines > maxPackageLines && !slices.Contains(packageLimitExempt, rel) {
			t.Errorf("package %s has %d non-test lines (limit %d): split it by job", rel, k.lines, maxPackageLines)
		}
		for f, n := range k.files {
			if n > maxFileLines {
				t.Errorf("%s has %d lines (limit %d): split it by reason to change", f, n, maxFileLines)
			}
		}
	}
}
