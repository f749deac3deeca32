package web

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// maxBodyBytes bounds every request body: nothing the shop accepts is big.
const maxBodyBytes = 64 << 10

// writeJSON answers with v as JSON. Headers go before WriteHeader.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeText answers 200 with a plain-text body, as the seed's checkout and
// webhook do.
func writeText(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, body)
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
}

// writeError answers with {"error": message}. A shop error's message is
// meant for the client, with Retry-After in whole seconds when it says when
// to try again; a database out of reach for a moment answers 503 with
// Retry-After; anything else is internal: it is logged with the request
// and the client reads only "internal error".
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	var shopErr *shop.Error
	if errors.As(err, &shopErr) {
		if shopErr.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(shopErr.RetryAfter.Seconds()))))
		}
		for _, e := range errorStatus {
			if errors.Is(err, e.kind) {
				writeJSON(w, e.status, map[string]string{"error": shopErr.Message})
				return
			}
		}
	}
	if store.IsUnavailable(err) {
		// PostgreSQL restarting or failing over, a locked or full SQLite
		// file: the same request is likely to succeed in a moment.
		logger.Warn("database unavailable", slog.Any("error", err),
			slog.Group("request", "method", r.Method, "path", r.URL.Path))
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the shop's database is unavailable for a moment: retry"})
		return
	}
	if r.Context().Err() != nil {
		// The client left before its answer: nothing went wrong here, and
		// nobody reads what is written.
		logger.Debug("client went away", "method", r.Method, "path", r.URL.Path, slog.Any("error", err))
		return
	}
	logger.Error("internal error",
		slog.Any("error", err),
		slog.Group("request", "method", r.Method, "path", r.URL.Path))
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
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
