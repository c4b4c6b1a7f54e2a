package ingest

import (
	"sort"
	"strconv"
	"time"

	"github.com/carehub/carehub/internal/model"
)

// AppendReadingJSON appends r as the contract §3 JSON, the same bytes
// encoding/json would produce, without reflection: it runs for every value
// carehub ingests.
func AppendReadingJSON(b []byte, r *model.Reading) []byte {
	b = append(b, `{"resident_id":"`...)
	b = append(b, r.ResidentID...) // ids are [a-z0-9_-]: nothing to escape
	b = append(b, `","home_id":"`...)
	b = append(b, r.HomeID...)
	b = append(b, `","device_id":"`...)
	b = append(b, r.DeviceID...)
	b = append(b, `","device_kind":"`...)
	b = append(b, r.DeviceKind...)
	b = append(b, `","ts":"`...)
	b = r.TS.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","values":{`...)
	var keys [8]string
	names := keys[:0]
	for k := range r.Values {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, k...) // catalogue names: nothing to escape
		b = append(b, `":`...)
		b = strconv.AppendFloat(b, r.Values[k], 'g', -1, 64)
	}
	return append(b, "}}"...)
}
