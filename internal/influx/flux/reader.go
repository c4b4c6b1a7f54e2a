// Package flux is the query side of InfluxDB: it builds Flux queries from
// typed values (never by pasting request values into text) and reads their
// answers into readings, trends, daily baselines, activity windows and
// export pages. Package influx owns the connection, the setup and the
// writes; a Reader asks through its Query method.
package flux

import (
	"time"

	"github.com/carehub/carehub/internal/influx"
)

// Reader answers carehub's queries from one InfluxDB bucket. It is safe for
// concurrent use.
type Reader struct {
	in     *influx.Client
	bucket string
}

// New returns a Reader asking through c, in c's bucket.
func New(c *influx.Client) *Reader { return &Reader{in: c, bucket: c.Bucket()} }

// Point is one (time, value) of a readings query.
type Point struct {
	T time.Time
	V float64
}
