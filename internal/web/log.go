package web

import (
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// logRequest writes the request's one log line, with the error the
// handler noted, if any: at Error for a 500, where the shop failed; at Warn
// for another 5xx, whose answer says why and to retry (the database out of
// reach for a moment, or refusing writes), and for an answer that could not
// be written; at Debug otherwise, and when the client left before its
// answer. It names the workflow the request is about, if any
// (noteWorkflow), and is logged with the request's context, whose span a
// tracing logger takes the trace id of (cmd/widgetstore's traceLogs).
func (s *Server) logRequest(r *http.Request, rec *statusRecorder, d time.Duration) {
	fields := []any{"id", rec.id, "method", r.Method, "path", r.URL.Path}
	if rec.workflow != "" {
		fields = append(fields, "workflow", rec.workflow)
	}
	request := slog.Group("request", fields...)
	ctx := r.Context()
	switch {
	case rec.err != nil && ctx.Err() != nil:
		s.logger.DebugContext(ctx, "client went away", request, "status", rec.status, "duration", d, slog.Any("error", rec.err))
	case rec.status == http.StatusInternalServerError:
		s.logger.ErrorContext(ctx, "request failed", request, "status", rec.status, "duration", d, slog.Any("error", rec.err))
	case rec.status >= 500 || rec.err != nil:
		s.logger.WarnContext(ctx, "request failed", request, "status", rec.status, "duration", d, slog.Any("error", rec.err))
	default:
		s.logger.DebugContext(ctx, "request", request, "status", rec.status, "duration", d)
	}
}

// RequestIDHeader carries a request's id, which its log line shows: the
// client's, when it sends a sane one (a proxy's, to follow a request
// across both logs), else one made here; the answer carries it back.
const RequestIDHeader = "X-Request-Id"

// maxRequestID bounds a client's request id: it goes into every log line.
const maxRequestID = 128

// requestID is the client's id for r when it is sane (1 to maxRequestID
// printable ASCII characters, no space: nothing that could break or forge
// a log line), else a random one.
func requestID(r *http.Request) string {
	id := r.Header.Get(RequestIDHeader)
	if id == "" || len(id) > maxRequestID || strings.ContainsFunc(id, func(c rune) bool { return c <= ' ' || c > '~' }) {
		return rand.Text()
	}
	return id
}

// recorderKey is the request context's key to its statusRecorder.
type recorderKey struct{}

// noteFailure hands err to the request's log line (logRequest). Every
// handler runs under Server.ServeHTTP, which puts the request's
// statusRecorder in its context; one that does not is a bug, and panics
// (net/http logs the panic, with err).
func noteFailure(r *http.Request, err error) {
	rec, ok := r.Context().Value(recorderKey{}).(*statusRecorder)
	if !ok {
		panic("web: a handler ran outside Server.ServeHTTP, so its failure would not be logged: " + err.Error())
	}
	rec.err = errors.Join(rec.err, err)
}

// noteWorkflow names the workflow the request is about (a checkout's id)
// in its log line and its span.
func noteWorkflow(r *http.Request, id string) {
	if rec, ok := r.Context().Value(recorderKey{}).(*statusRecorder); ok && id != "" {
		rec.workflow = id
	}
}
