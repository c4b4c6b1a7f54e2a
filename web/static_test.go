package web

import (
	"bytes"
	"compress/gzip"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/carehub/carehub/web/chart"
	"github.com/carehub/carehub/web/i18n"
)

// TestCatalogueParity: ko and en have the same keys, and each text the
// same formatting verbs, so no page shows a key or a broken format.
func TestCatalogueParity(t *testing.T) {
	cs, err := i18n.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	verbs := regexp.MustCompile(`%(\[\d+\])?0?\d*[dsv]`)
	for k, ko := range cs["ko"] {
		en, ok := cs["en"][k]
		if !ok {
			t.Errorf("en lacks %q", k)
			continue
		}
		a, b := verbs.FindAllString(ko, -1), verbs.FindAllString(en, -1)
		if len(a) != len(b) && !strings.HasPrefix(k, "date.") {
			t.Errorf("%q: ko has verbs %v, en %v", k, a, b)
		}
	}
	for k := range cs["en"] {
		if _, ok := cs["ko"][k]; !ok {
			t.Errorf("ko lacks %q", k)
		}
	}
}

// TestNoHangulOutsideCatalogue: every Korean text comes from i18n/ko.json;
// templates, scripts, styles and Go code hold none.
func TestNoHangulOutsideCatalogue(t *testing.T) {
	check := func(name string, b []byte) {
		for i, r := range string(b) {
			if unicode.Is(unicode.Hangul, r) {
				t.Errorf("%s: Hangul %q at byte %d outside the catalogue", name, r, i)
				return
			}
		}
	}
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, "i18n/") || strings.HasSuffix(p, ".png") {
			return err // images are binary: their bytes are not text
		}
		b, _ := fs.ReadFile(files, p)
		check(p, b)
		return nil
	})
	gos, _ := filepath.Glob("*.go")
	for _, p := range gos {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		check(p, b)
	}
}

// TestNoExternalURL: no template or asset refers to another origin (no
// CDN, no webfont, nothing a care home's closed network cannot reach).
// The SVG namespace is a name, never fetched: a standalone SVG (the phone
// app's icon) needs it.
func TestNoExternalURL(t *testing.T) {
	ext := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(files, p)
		b = bytes.ReplaceAll(b, []byte(`xmlns="http://www.w3.org/2000/svg"`), nil)
		if m := ext.Find(b); m != nil {
			t.Errorf("%s refers to %q", p, m)
		}
		return nil
	})
}

// TestDateFormats with a fixed clock, in CARE_TIMEZONE (Asia/Seoul).
func TestDateFormats(t *testing.T) {
	cs, err := i18n.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 3, 6, 5, 0, 0, time.UTC) // 15:05 in Seoul, a Thursday
	for _, c := range []struct{ lang, want string }{
		{"ko", "2026. 12. 3.(목) 15:05"},
		{"en", "3 Dec 2026 (Thu) 15:05"},
	} {
		if got := cs.DateTime(c.lang, at, seoul); got != c.want {
			t.Errorf("%s: %q, want %q", c.lang, got, c.want)
		}
	}
	if got := cs.DateTime("ko", time.Date(2027, 1, 9, 23, 7, 0, 0, seoul), seoul); got != "2027. 1. 9.(토) 23:07" {
		t.Errorf("ko: %q", got)
	}
	if got := cs.ShortDate("ko", at, seoul); got != "12. 3." {
		t.Errorf("ko short: %q", got)
	}
	now := at.Add(26 * time.Hour) // 2026-12-04 17:05 Seoul
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{now.Add(-20 * time.Second), "방금 전"},
		{now.Add(-3 * time.Minute), "3분 전"},
		{now.Add(-2 * time.Hour), "2시간 전"},
		{at, "어제 15:05"},
		{at.Add(-48 * time.Hour), "2026. 12. 1.(화) 15:05"},
	} {
		if got := cs.Since("ko", c.t, now, seoul); got != c.want {
			t.Errorf("since %v: %q, want %q", now.Sub(c.t), got, c.want)
		}
	}
	if got := cs.T("ko", "alerts.unacked", 12); got != "12분째 미확인" {
		t.Errorf("unacked: %q", got)
	}
}

// TestCharts: NEWS2 bands come from the rules' scoring; a hole in the data
// breaks the line.
func TestCharts(t *testing.T) {
	bands := chart.News2Bands("heart_rate", 30, 140)
	var scores []int
	for _, b := range bands {
		scores = append(scores, b.Score)
	}
	// NEWS2 pulse: ≤40 3, 41–50 1, 51–90 0, 91–110 1, 111–130 2, ≥131 3.
	want := []int{3, 1, 0, 1, 2, 3}
	if len(scores) != len(want) {
		t.Fatalf("heart-rate bands %v, want scores %v", bands, want)
	}
	for i := range want {
		if scores[i] != want[i] {
			t.Fatalf("heart-rate bands %v, want scores %v", bands, want)
		}
	}
}

// TestAssetBudget: the JavaScript a page loads stays within 80 KB gzip
// (issue 12); today it is one small file.
func TestAssetBudget(t *testing.T) {
	as, err := loadAssets(files)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for name, a := range as {
		if strings.HasSuffix(name, ".js") {
			_, _ = zw.Write(a.body)
		}
	}
	_ = zw.Close()
	if buf.Len() > 80*1024 {
		t.Errorf("the console's JavaScript is %d bytes gzip, over 80 KB", buf.Len())
	}
	t.Logf("JavaScript: %d bytes gzip", buf.Len())
}

// TestProblemsTranslated: every reason the validations give (alerts/rules:
// bad(field, reason, ...) and ps.add; api: Problem{Reason} and
// invalidAt(code, field, reason, ...); alerts/escalation and devices:
// invalid(field, reason, ...)) has a text in the catalogue ("problem." + reason), so the
// console never shows an English reason on a Korean page.
func TestProblemsTranslated(t *testing.T) {
	cs, err := i18n.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	reasons := goStrings(t, []string{"../alerts/rules/settings.go", "../api/settings.go", "../api/modes.go", "../alerts/escalation/escalation.go",
		"../devices/device.go", "../devices/people.go", "../api/devices.go", "../api/residents.go"},
		func(path string, n ast.Node) []ast.Expr {
			switch n := n.(type) {
			case *ast.CallExpr:
				switch name := calledName(n); {
				case (name == "bad" || name == "add") && len(n.Args) >= 2,
					name == "invalid" && (strings.HasSuffix(path, "escalation.go") || strings.Contains(path, "/devices/")) && len(n.Args) >= 2:
					return n.Args[1:2]
				case name == "invalidAt" && len(n.Args) >= 3:
					return n.Args[2:3]
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Reason" {
					return []ast.Expr{n.Value}
				}
			}
			return nil
		})
	if len(reasons) < 20 {
		t.Fatalf("found %d reasons; the parse no longer finds the validation's calls", len(reasons))
	}
	for r := range reasons {
		if _, ok := cs["ko"]["problem."+r]; !ok {
			t.Errorf("ko lacks problem.%q", r)
		}
	}
}

// TestAPIErrorsTranslated: every error code the API answers with (its
// invalid, badRequest, invalidFields, invalidAt and alertError calls and
// the Code of its Error literals) has Korean words (apierr.<code>), which
// the console and the phone show in place of the API's English message.
func TestAPIErrorsTranslated(t *testing.T) {
	cs, err := i18n.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	gos, _ := filepath.Glob("../api/*.go")
	gos = slices.DeleteFunc(gos, func(p string) bool { return strings.HasSuffix(p, "_test.go") })
	codes := goStrings(t, gos, func(_ string, n ast.Node) []ast.Expr {
		switch n := n.(type) {
		case *ast.CallExpr:
			switch calledName(n) {
			case "invalid", "badRequest", "invalidFields", "invalidAt":
				return n.Args[:1]
			case "alertError":
				return n.Args[len(n.Args)-1:]
			}
		case *ast.CompositeLit:
			var out []ast.Expr
			if ty, ok := n.Type.(*ast.Ident); ok && ty.Name == "Error" {
				for _, e := range n.Elts {
					if kv, ok := e.(*ast.KeyValueExpr); ok {
						if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Code" {
							out = append(out, kv.Value)
						}
					}
				}
			}
			return out
		}
		return nil
	})
	if len(codes) < 50 {
		t.Fatalf("found %d codes; the parse no longer finds the API's errors", len(codes))
	}
	for c := range codes {
		if cs["ko"]["apierr."+c] == "" {
			t.Errorf("API error %q has no Korean words (apierr.%s in ko.json)", c, c)
		}
	}
}

// goStrings parses the Go files and collects the string literals among the
// expressions pick returns for each node.
func goStrings(t *testing.T, paths []string, pick func(path string, n ast.Node) []ast.Expr) map[string]bool {
	t.Helper()
	found := map[string]bool{}
	for _, p := range paths {
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			for _, e := range pick(p, n) {
				if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
					s, err := strconv.Unquote(b.Value)
					if err != nil {
						t.Fatal(err)
					}
					found[s] = true
				}
			}
			return true
		})
	}
	return found
}

// calledName is the name of the function or method a call calls.
func calledName(c *ast.CallExpr) string {
	switch fn := c.Fun.(type) {
	case *ast.Ident:
		return fn.Name
	case *ast.SelectorExpr:
		return fn.Sel.Name
	}
	return ""
}
