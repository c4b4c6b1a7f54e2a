package web

import "embed"

// files are the console's templates and static assets (the catalogues are web/i18n's), in the
// binary: `go build` from a fresh clone is enough, and no page needs the
// internet.
//
//go:embed templates static
var files embed.FS
