package api

import "testing"

// TestCSVNeutralisesFormulas: a cell a spreadsheet would run as a formula
// (= + - @, tab, carriage return first) gets a leading apostrophe; numbers
// and ordinary text are written as they are.
func TestCSVNeutralisesFormulas(t *testing.T) {
	for in, want := range map[string]string{
		`=HYPERLINK("http://x")`: `'=HYPERLINK("http://x")`,
		"+cmd|' /C calc'!A0":     "'+cmd|' /C calc'!A0",
		"-2+3+cmd":               "'-2+3+cmd",
		"@SUM(A1)":               "'@SUM(A1)",
		"\tx":                    "'\tx",
		"\rx":                    "'\rx",
		"-5":                     "-5",
		"+1.5e3":                 "+1.5e3",
		"heart_rate":             "heart_rate",
		"":                       "",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}
