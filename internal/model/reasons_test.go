package model

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestRejectReasonsAreTheDocumented checks RejectReasons against the table
// of docs/device-protocol.md §11, the contract's vocabulary: every reason
// carehub reports is documented, and every documented one is in the list.
func TestRejectReasonsAreTheDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/device-protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "## 11. Bad input")
	if !ok {
		t.Fatal("docs/device-protocol.md has no section 11. Bad input")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	code := regexp.MustCompile("`([a-z_]+)`")
	var documented []string
	for line := range strings.SplitSeq(sec, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(line[1:], "|")
		for _, m := range code.FindAllStringSubmatch(first, -1) {
			documented = append(documented, m[1])
		}
	}
	if !slices.Equal(documented, RejectReasons) {
		t.Errorf("docs/device-protocol.md §11 lists\n%v\nRejectReasons are\n%v", documented, RejectReasons)
	}
}
