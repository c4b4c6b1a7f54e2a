package ingest

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestIntakeNeedsNoStore keeps the intake apart from storage (issue 11):
// what it imports, and all that depends on, includes neither the InfluxDB
// writer nor InfluxDB code. The writer's own files (writer*.go), on their
// way to a package of their own, are not the intake's.
func TestIntakeNeedsNoStore(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var imports []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "writer") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range ast.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			imports = append(imports, p)
		}
	}
	out, err := exec.Command("go", append([]string{"list", "-deps"}, imports...)...).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "influx") || dep == "github.com/carehub/carehub/writer" {
			t.Errorf("the intake depends on %s", dep)
		}
	}
}
