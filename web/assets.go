package web

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"

	"github.com/gofiber/fiber/v2"
)

// asset is one embedded static file with its checksum.
type asset struct {
	body []byte
	sum  string // hex SHA-256
	ctyp string
}

// loadAssets reads every file under static/ and checksums it; pages refer
// to /static/<name>?v=<first 12 hex digits>, so a changed file gets a new
// URL and every URL can be cached for good.
func loadAssets(fsys fs.FS) (map[string]asset, error) {
	out := map[string]asset{}
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		out[p[len("static/"):]] = asset{body: b, sum: hex.EncodeToString(sum[:]), ctyp: ct}
		return nil
	})
	return out, err
}

// assetURL is the checksummed URL of a static file (templates' asset).
func (c *Console) assetURL(name string) string {
	a, ok := c.assets[name]
	if !ok {
		panic("web: no static asset " + name) // a template names a file that is not embedded: a build mistake
	}
	return "/static/" + name + "?v=" + a.sum[:12]
}

// static serves an embedded file; with the current checksum in v it may be
// cached for a year, otherwise it must be revalidated (ETag).
func (c *Console) static(ctx *fiber.Ctx) error {
	a, ok := c.assets[ctx.Params("*")]
	if !ok {
		return ctx.SendStatus(http.StatusNotFound)
	}
	etag := `"` + a.sum[:32] + `"`
	ctx.Set(fiber.HeaderETag, etag)
	if ctx.Query("v") == a.sum[:12] {
		ctx.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	} else {
		ctx.Set(fiber.HeaderCacheControl, "no-cache")
	}
	if ctx.Get(fiber.HeaderIfNoneMatch) == etag {
		return ctx.SendStatus(http.StatusNotModified)
	}
	ctx.Set(fiber.HeaderContentType, a.ctyp)
	return ctx.Send(a.body)
}
