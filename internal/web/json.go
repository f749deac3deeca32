package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// maxBodyBytes bounds every request body: nothing the shop accepts is big.
const maxBodyBytes = 64 << 10

// writeJSON answers with v as JSON. Headers go before WriteHeader. An
// answer that cannot be written (the client left, or v does not encode)
// is noted for the request's log line.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		noteFailure(r, fmt.Errorf("writing the %d answer: %w", status, err))
	}
}

// writeText answers 200 with a plain-text body, as the seed's checkout and
// webhook do.
func writeText(w http.ResponseWriter, r *http.Request, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, body); err != nil {
		noteFailure(r, fmt.Errorf("writing the answer: %w", err))
	}
}

// errorStatus maps each shop error kind to its HTTP status, in one place.
var errorStatus = []struct {
	kind   error
	status int
}{
	{shop.ErrInvalid, http.StatusBadRequest},
	{shop.ErrNotFound, http.StatusNotFound},
	{shop.ErrConflict, http.StatusConflict},
	{shop.ErrDenied, http.StatusUnauthorized},
	{shop.ErrLimited, http.StatusTooManyRequests},
	{shop.ErrUnavailable, http.StatusServiceUnavailable},
}

// writeError answers with {"error": message}. A shop error's message is
// meant for the client, with Retry-After in whole seconds when it says when
// to try again; a database out of reach for a moment answers 503
// with Retry-After; anything else is internal: the client reads only
// "internal error". Both go to the request's log line (Server.ServeHTTP),
// which names the method and path.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var shopErr *shop.Error
	if errors.As(err, &shopErr) {
		if shopErr.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(shopErr.RetryAfter.Seconds()))))
		}
		for _, e := range errorStatus {
			if errors.Is(err, e.kind) {
				body := map[string]any{"error": shopErr.Message}
				maps.Copy(body, shopErr.Detail)
				writeJSON(w, r, e.status, body)
				return
			}
		}
	}
	noteFailure(r, err)
	if r.Context().Err() != nil {
		// The client left before its answer: nobody reads what is written.
		return
	}
	if store.IsUnavailable(err) {
		// PostgreSQL restarting or failing over, a locked or full SQLite
		// file: the same request is likely to succeed in a moment.
		w.Header().Set("Retry-After", "1")
		writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{"error": "the shop's database is unavailable for a moment: retry"})
		return
	}
	writeJSON(w, r, http.StatusInternalServerError, map[string]string{"error": "internal error"})
}

// decode reads a JSON body into v. An empty body leaves v as it is, so the
// seed's clients, which send none, get the defaults.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return shop.Errorf(shop.ErrInvalid, "malformed JSON body: %s", err.Error())
	}
	if dec.More() {
		return shop.Errorf(shop.ErrInvalid, "malformed JSON body: more than one value")
	}
	return nil
}

// jsonErrors turns the error answers that do not come from writeError into
// {"error": ...} too: the mux's own 404 (no route) and 405 (a route, but
// not for this method; its Allow header is kept), and net/http's others
// (http.ServeContent's 416 for a range past a file's end, say). Every error
// the shop answers is then JSON.
type jsonErrors struct {
	http.ResponseWriter
	r       *http.Request
	discard bool // the plain-text body that follows is dropped
}

func (w *jsonErrors) WriteHeader(status int) {
	h := w.Header()
	if status < 400 || strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	var msg string
	switch status {
	case http.StatusNotFound:
		msg = fmt.Sprintf("not found: %s %s", w.r.Method, w.r.URL.Path)
	case http.StatusMethodNotAllowed:
		msg = fmt.Sprintf("method %s not allowed for %s: use %s", w.r.Method, w.r.URL.Path, h.Get("Allow"))
	default:
		msg = strings.ToLower(http.StatusText(status))
	}
	h.Del("Content-Length") // it was the plain text's
	writeJSON(w.ResponseWriter, w.r, status, map[string]string{"error": msg})
	w.discard = true
}

func (w *jsonErrors) Write(p []byte) (int, error) {
	if w.discard {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *jsonErrors) Unwrap() http.ResponseWriter { return w.ResponseWriter }
