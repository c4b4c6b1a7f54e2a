package flux

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scan runs f and calls row for every record with a numeric _value, with
// its _field and _time when the query kept them.
func (r *Reader) scan(ctx context.Context, f Flux, row func(field string, t time.Time, v float64)) error {
	return r.scanCSV(ctx, f, []string{"_field", "_time", "_value"}, func(vals []string) error {
		v, err := strconv.ParseFloat(vals[2], 64)
		if err != nil {
			return nil // not a number (a string or boolean field): not ours
		}
		var t time.Time
		if vals[1] != "" {
			if t, err = time.Parse(time.RFC3339Nano, vals[1]); err != nil {
				return fmt.Errorf("influx query: _time %q: %w", vals[1], err)
			}
		}
		row(vals[0], t, v)
		return nil
	})
}

// scanCSV runs f and calls row with the values of cols in each record, ""
// for a column a table lacks, reading InfluxDB's CSV answer line by line:
// the SDK's QueryTableResult builds a map for every record, and was two
// thirds of carehub's CPU time for one resident's week of minute points
// (BenchmarkReadingsWeek: 50 ms a query with it). An error row in the
// answer (Flux reports errors met while streaming that way) is returned as
// an error.
func (r *Reader) scanCSV(ctx context.Context, f Flux, cols []string, row func(vals []string) error) error {
	if f.text == "" {
		return fmt.Errorf("influx query: empty query")
	}
	body, err := r.in.Query(ctx, f.text)
	if err != nil {
		return err
	}
	defer body.Close()
	return readCSV(body, cols, row)
}

// readCSV reads Flux's annotated CSV (with the datatype annotation): each
// table starts with annotation rows and a header row, and ends with an
// empty line.
func readCSV(r io.Reader, cols []string, row func(vals []string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	idx := make([]int, len(cols)) // column number of each of cols, or -1
	vals := make([]string, len(cols))
	var fields []string
	header, errTable := false, false
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case line == "":
			header = false
			continue
		case line[0] == '#':
			header = true // the header row follows the annotations
			continue
		}
		fields = splitCSV(line, fields[:0])
		if header {
			header = false
			for i, name := range cols {
				idx[i] = slices.Index(fields, name)
			}
			errTable = slices.Contains(fields, "error")
			continue
		}
		if errTable {
			return fmt.Errorf("influx query: %s", strings.Join(fields[1:], " "))
		}
		for i, j := range idx {
			vals[i] = ""
			if j >= 0 && j < len(fields) {
				vals[i] = fields[j]
			}
		}
		if err := row(vals); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("influx query: reading the answer: %w", err)
	}
	return nil
}

// splitCSV splits one CSV line into dst: plainly on commas, or with
// encoding/csv when the line has quotes (an error message, a tag value
// with a comma).
func splitCSV(line string, dst []string) []string {
	if strings.IndexByte(line, '"') >= 0 {
		rec, err := csv.NewReader(strings.NewReader(line)).Read()
		if err == nil {
			return append(dst, rec...)
		}
	}
	for {
		i := strings.IndexByte(line, ',')
		if i < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:i])
		line = line[i+1:]
	}
}
