package web

import "embed"

// files are the console's templates, static assets and catalogues, in the
// binary: `go build` from a fresh clone is enough, and no page needs the
// internet.
//
//go:embed templates static i18n/*.json
var files embed.FS
