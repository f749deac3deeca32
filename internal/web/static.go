package web

import (
	"io"
	"io/fs"
	"net/http"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// handleStatic handles "GET /static/{path...}": the page's files, and
// nothing else. A directory is not listed: it is not found, like any name
// that is not a file.
func handleStatic(assets fs.FS) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("path")
		f, err := assets.Open(name)
		if err != nil {
			writeError(w, r, shop.Errorf(shop.ErrNotFound, "no file %q", r.URL.Path))
			return
		}
		defer f.Close()
		info, err := f.Stat()
		content, seekable := f.(io.ReadSeeker)
		if err != nil || info.IsDir() || !seekable {
			writeError(w, r, shop.Errorf(shop.ErrNotFound, "no file %q", r.URL.Path))
			return
		}
		// ServeContent, not ServeFileFS: it neither redirects nor lists.
		http.ServeContent(w, r, info.Name(), info.ModTime(), content)
	})
}
