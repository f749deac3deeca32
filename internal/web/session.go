package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// The operator signs in on the page: the token is exchanged once for a
// session cookie, HttpOnly (no script reads it), SameSite=Strict (no other
// site's page sends it) and Secure over TLS. The cookie is
// "<session id>.<expiry>.<HMAC>", signed with a key derived from the
// operator token, so a session outlives a crash of the server (the demo's
// crash button) and is good on every instance that shares the token;
// changing the token ends every session. Signing out ends the session in
// this process only (revoked below, in memory); the cookie also expires.
const (
	sessionCookie = "widgetstore_operator"
	sessionTTL    = 12 * time.Hour
	// signInFailures is how many wrong tokens one client may send a
	// minute, in a burst of as many, before its sign-ins are refused
	// with 429 for a while: the token cannot be guessed one try at a time.
	signInFailures = 5
	// maxSignInClients bounds the clients whose failures are remembered.
	maxSignInClients = 10_000
)

// actorKey holds, in a request's context, who the operator is: "token",
// "session <id>", or "anyone" when the shop has no operator token.
type actorKey struct{}

func actorOf(r *http.Request) string {
	actor, _ := r.Context().Value(actorKey{}).(string)
	return actor
}

// sessions signs and checks the operator's session cookies.
type sessions struct {
	key      []byte // nil: no operator token, everyone is the operator
	mu       sync.Mutex
	revoked  map[string]time.Time     // signed-out session ids, until their expiry
	failures map[string]*rate.Limiter // wrong tokens, by client
}

func newSessions(token []byte) *sessions {
	s := &sessions{revoked: map[string]time.Time{}, failures: map[string]*rate.Limiter{}}
	if token != nil {
		mac := hmac.New(sha256.New, token)
		mac.Write([]byte("widgetstore operator session"))
		s.key = mac.Sum(nil)
	}
	return s
}

func (s *sessions) sign(id string, expiry int64) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id + "." + strconv.FormatInt(expiry, 10)))
	return hex.EncodeToString(mac.Sum(nil))
}

// issue makes a new session's cookie value.
func (s *sessions) issue(now time.Time) string {
	id := rand.Text()[:16]
	expiry := now.Add(sessionTTL).Unix()
	return id + "." + strconv.FormatInt(expiry, 10) + "." + s.sign(id, expiry)
}

// check returns the session id of a cookie value that is signed, unexpired
// and not signed out; "" otherwise.
func (s *sessions) check(value string, now time.Time) string {
	id, rest, ok := strings.Cut(value, ".")
	expiryText, sig, ok2 := strings.Cut(rest, ".")
	expiry, err := strconv.ParseInt(expiryText, 10, 64)
	if !ok || !ok2 || err != nil || now.Unix() >= expiry || !hmac.Equal([]byte(sig), []byte(s.sign(id, expiry))) {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, out := s.revoked[id]; out {
		return ""
	}
	return id
}

// revoke ends a session in this process.
func (s *sessions) revoke(id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for other, until := range s.revoked {
		if now.After(until) {
			delete(s.revoked, other)
		}
	}
	s.revoked[id] = now.Add(sessionTTL)
}

// signInWait is how long client must wait before it may try a token
// again; 0 when it may now.
func (s *sessions) signInWait(client string, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	lim := s.failures[client]
	if lim == nil || lim.TokensAt(now) >= 1 {
		return 0
	}
	return time.Duration((1 - lim.TokensAt(now)) * float64(time.Minute) / signInFailures)
}

// failedSignIn counts a wrong token from client.
func (s *sessions) failedSignIn(client string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) >= maxSignInClients {
		for c, lim := range s.failures { // forget those that may try fully again
			if lim.TokensAt(now) >= signInFailures {
				delete(s.failures, c)
			}
		}
	}
	lim := s.failures[client]
	if lim == nil {
		lim = rate.NewLimiter(rate.Every(time.Minute/signInFailures), signInFailures)
		s.failures[client] = lim
	}
	lim.AllowN(now, 1)
}

// operatorActor says who the operator making r is, or "" when r does not
// come from the operator. The bearer token is for scripts; the cookie for
// the page.
func (s *Server) operatorActor(r *http.Request) string {
	if s.sessions.key == nil {
		return "anyone"
	}
	if hmac.Equal([]byte(r.Header.Get("Authorization")), []byte("Bearer "+string(s.opts.OperatorToken))) {
		return "token"
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if id := s.sessions.check(c.Value, time.Now()); id != "" {
			return "session " + id
		}
	}
	return ""
}

// operator lets a request through to h only from the operator: with the
// bearer token or a session cookie, when the shop has a token. A request
// that changes something and comes with the cookie alone must also come
// from the shop's own page (sameOrigin): the cookie is SameSite=Strict
// already, and this holds for browsers that ignore it.
func (s *Server) operator(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor := s.operatorActor(r)
		if actor == "" {
			writeError(w, r, shop.Errorf(shop.ErrDenied, "this is for the operator: sign in on /console, or send Authorization: Bearer <OPERATOR_TOKEN>"))
			return
		}
		if strings.HasPrefix(actor, "session ") && !safeMethod(r.Method) && !sameOrigin(r) {
			writeJSON(w, r, http.StatusForbidden, map[string]string{"error": "refused: an operator's request by cookie must come from the shop's own page (Origin and Sec-Fetch-Site)"})
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, actor)))
	})
}

func safeMethod(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// sameOrigin reports whether a browser's request comes from a page of this
// server: its Origin, which browsers send with every POST, names this
// host, and Sec-Fetch-Site, where the browser sends it, says same-origin.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	origin, err := url.Parse(r.Header.Get("Origin"))
	return err == nil && origin.Host != "" && origin.Host == r.Host
}

// handleSession handles "GET /api/operator/session": whether the page is
// the operator's, and whether signing in is needed at all.
func (s *Server) handleSession() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor := s.operatorActor(r)
		writeJSON(w, r, http.StatusOK, map[string]any{
			"operator": actor != "", "actor": actor, "token_required": s.sessions.key != nil,
		})
	})
}

// handleSignIn handles "POST /api/operator/session" {"token": "..."}: the
// operator token exchanged for a session cookie.
func (s *Server) handleSignIn() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.sessions.key == nil {
			writeJSON(w, r, http.StatusOK, map[string]any{"operator": true, "actor": "anyone", "token_required": false})
			return
		}
		if r.Header.Get("Origin") != "" && !sameOrigin(r) {
			writeJSON(w, r, http.StatusForbidden, map[string]string{"error": "refused: sign in from the shop's own page"})
			return
		}
		var body struct {
			Token string `json:"token"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, r, err)
			return
		}
		client, now := s.guard.clientOf(r), time.Now()
		if wait := s.sessions.signInWait(client, now); wait > 0 {
			writeError(w, r, shop.Limitedf(wait, "too many wrong tokens: try again in %.0f s", math.Ceil(wait.Seconds())))
			return
		}
		if !hmac.Equal([]byte(body.Token), s.opts.OperatorToken) {
			s.sessions.failedSignIn(client, now)
			s.logger.Warn("an operator sign-in with a wrong token", "client", client)
			writeError(w, r, shop.Errorf(shop.ErrDenied, "wrong operator token"))
			return
		}
		value := s.sessions.issue(time.Now())
		id, _, _ := strings.Cut(value, ".")
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", MaxAge: int(sessionTTL.Seconds()),
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.isTLS(r)})
		s.logger.Info("an operator signed in", "session", id, "client", s.guard.clientOf(r))
		writeJSON(w, r, http.StatusOK, map[string]any{"operator": true, "actor": "session " + id, "token_required": true})
	})
}

// handleSignOut handles "DELETE /api/operator/session" (behind operator):
// the session ends, and its cookie is cleared.
func (s *Server) handleSignOut() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(actorOf(r), "session "); ok {
			s.sessions.revoke(id, time.Now())
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.isTLS(r)})
		writeJSON(w, r, http.StatusOK, map[string]any{"operator": s.sessions.key == nil})
	})
}

// isTLS reports whether the browser reached the shop over TLS: directly,
// or through the proxy in front (BehindProxy), which says so.
func (s *Server) isTLS(r *http.Request) bool {
	return r.TLS != nil || (s.opts.BehindProxy && r.Header.Get("X-Forwarded-Proto") == "https")
}
