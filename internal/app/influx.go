package app

import (
	"context"
	"crypto/tls"

	"github.com/carehub/carehub/internal/influx"
)

// startInflux connects to InfluxDB and sets up its bucket or database and
// retention.
func (a *App) startInflux(ctx context.Context, clientTLS *tls.Config) (*influx.Client, func(context.Context), error) {
	cfg := a.Config
	in, err := influx.Open(ctx, influx.Options{URL: cfg.InfluxURL, Token: cfg.InfluxToken, Org: cfg.InfluxOrg,
		Bucket: cfg.InfluxBucket, Version: cfg.InfluxVersion, RawRetention: cfg.RawRetention, TLS: clientTLS,
		Log: a.Log.With().Str("component", "influx").Logger()})
	if err != nil {
		return nil, nil, err
	}
	return in, func(context.Context) { in.Close() }, nil
}
