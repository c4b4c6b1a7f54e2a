package flux

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestReadCSV(t *testing.T) {
	const answer = "#datatype,string,long,dateTime:RFC3339,double,string\r\n" +
		",result,table,_time,_value,_field\r\n" +
		",_result,0,2026-11-26T01:00:00Z,72,heart_rate\r\n" +
		",_result,0,2026-11-26T01:01:00Z,73.5,heart_rate\r\n" +
		"\r\n" +
		"#datatype,string,long,string,long\r\n" +
		",result,table,_field,_value\r\n" +
		",_result,1,\"odd, name\",4\r\n" +
		"\r\n"
	var got []string
	err := readCSV(strings.NewReader(answer), []string{"_field", "_time", "_value"}, func(v []string) error {
		got = append(got, strings.Join(v, "|"))
		return nil
	})
	want := "[heart_rate|2026-11-26T01:00:00Z|72 heart_rate|2026-11-26T01:01:00Z|73.5 odd, name||4]"
	if err != nil || fmt.Sprint(got) != want {
		t.Fatalf("got %v, %v\nwant %s", got, err, want)
	}
	// Flux reports an error met while streaming as a table of its own.
	failed := answer + "#datatype,string,string\r\n,error,reference\r\n,\"panic: out of memory, sort of\",\r\n\r\n"
	err = readCSV(strings.NewReader(failed), []string{"_value"}, func([]string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "panic: out of memory, sort of") {
		t.Fatalf("error table: %v", err)
	}
}

// TestScanQueryError: a query InfluxDB refuses is an error that says why.
func TestScanQueryError(t *testing.T) {
	c, _, _ := open18(t)
	err := c.scan(context.Background(), Flux{text: `from(bucket: "nope") |> range(start: -1h) |> no_such_function()`}, func(string, time.Time, float64) {})
	if err == nil || !strings.Contains(err.Error(), "no_such_function") {
		t.Fatalf("got %v, want an error naming the undefined function", err)
	}
}
