package flux

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/carehub/carehub/internal/influx"
	"github.com/carehub/carehub/internal/testenv"
)

// testDB is one database of a real InfluxDB: written through the client
// (as the writer does), read through a Reader (as the API does).
type testDB struct {
	*influx.Client
	*Reader
}

func openDB(ctx context.Context, o influx.Options) (*testDB, error) {
	c, err := influx.Open(ctx, o)
	if err != nil {
		return nil, err
	}
	return &testDB{Client: c, Reader: New(c)}, nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func open18(t *testing.T) (*testDB, *testenv.Influx, string) {
	in := testenv.SharedInflux(t)
	db := testenv.ID("care")
	c, err := openDB(ctxT(t), influx.Options{URL: in.URL, Bucket: db, RawRetention: 90 * 24 * time.Hour, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, in, db
}
