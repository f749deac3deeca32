package demopay

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// page holds the payment page: its template, script and style, embedded,
// so that the page needs nothing from elsewhere (CSP default-src 'self').
//
//go:embed page
var page embed.FS

var payPage = template.Must(template.ParseFS(page, "page/pay.html"))

// settleWait bounds how long POST /demopay/pay/{intent} waits for the Pay
// workflow to settle the intent, which it does in its first step.
const settleWait = 30 * time.Second

// Handler serves the provider's pages and API. Mount it at "/demopay/" of
// the shop's mux, unstripped: its routes name the whole path.
//
// The routes are the demo's stand-in for a provider's hosted page and
// dashboard, and take no credentials: anyone who knows an intent's id may
// pay or refuse it, which is what a demo needs and no real provider does.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /demopay/pay/{intent}", p.handlePayPage)
	mux.HandleFunc("POST /demopay/pay/{intent}", p.handlePay)
	mux.HandleFunc("GET /demopay/intents/{intent}", p.handleIntent)
	mux.HandleFunc("POST /demopay/intents/{intent}/refuse-refunds", p.handleRefuseRefunds)
	mux.Handle("GET /demopay/static/", http.StripPrefix("/demopay/static/", http.FileServerFS(mustSub(page, "page/static"))))
	return securityHeaders(mux)
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; form-action 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// Pay settles intent id with outcome (OutcomeSucceed or OutcomeFail) by
// starting its Pay workflow, unless it was started before, and returns the
// intent's status once settled: the first outcome's, whatever this one, or
// StatusExpired for an intent the shop expired.
func (p *Provider) Pay(ctx context.Context, id, outcome string) (string, error) {
	return p.startPay(ctx, payRequest{IntentID: id, Outcome: outcome})
}

// PayDespiteExpiry is Pay for an intent the shop may have expired: the
// demo's switch that shows what the shop does with a payment that got in
// at the very moment the shop gave up, which a real provider may take
// (the customer's card was being charged as the shop expired the
// session). The shop refunds it.
func (p *Provider) PayDespiteExpiry(ctx context.Context, id, outcome string) (string, error) {
	return p.startPay(ctx, payRequest{IntentID: id, Outcome: outcome, DespiteExpiry: true})
}

func (p *Provider) startPay(ctx context.Context, req payRequest) (string, error) {
	id, outcome := req.IntentID, req.Outcome
	if err := checkOutcome(outcome); err != nil {
		return "", err
	}
	in, err := readIntent(ctx, p.db.Q(), "intent_id", id)
	if store.IsNoRows(err) {
		return "", notFound(id)
	} else if err != nil {
		return "", fmt.Errorf("demopay: reading intent %s: %w", id, err)
	}
	if in.shownStatus() == StatusExpired && !req.DespiteExpiry {
		// Answered without the workflow, whose id the intent has but once:
		// the switch may still pay it.
		return StatusExpired, nil
	}
	if p.dbosCtx == nil {
		return "", errors.New("demopay: Register was not called")
	}
	wfID := payWorkflowID(id)
	if _, err := dbos.RunWorkflow(p.dbosCtx, p.pay, req, dbos.WithWorkflowID(wfID)); err != nil {
		return "", fmt.Errorf("demopay: starting the payment of intent %s: %w", id, err)
	}
	status, err := dbos.GetEvent[string](dbos.From(p.dbosCtx, ctx), wfID, eventSettled, settleWait)
	if err != nil {
		return "", fmt.Errorf("demopay: waiting for intent %s to be settled: %w", id, err)
	}
	return status, nil
}

// handlePayPage handles "GET /demopay/pay/{intent}": the customer's page.
func (p *Provider) handlePayPage(w http.ResponseWriter, r *http.Request) {
	view, err := p.intentView(r.Context(), r.PathValue("intent"))
	if err != nil {
		p.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := payPage.Execute(w, view); err != nil {
		p.logger.Warn("writing the pay page", slog.String("intent", view.ID), slog.Any("error", err))
	}
}

// handlePay handles "POST /demopay/pay/{intent}": the page's form
// (outcome=succeed|fail, refuse_refunds=on to tick the demo's switch
// first, despite_expiry=on to pay an intent the shop expired, the other
// switch), answered by a redirect to the page, or JSON ({"outcome":
// "succeed", "refuse_refunds": false, "despite_expiry": false}), answered
// with the intent's status, or 409 if the intent was already settled the
// other way, or expired.
func (p *Provider) handlePay(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("intent")
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	isJSON := !isForm(r)
	var outcome string
	var refuseRefunds, despiteExpiry bool
	if isJSON {
		var body struct {
			Outcome       string `json:"outcome"`
			RefuseRefunds bool   `json:"refuse_refunds"`
			DespiteExpiry bool   `json:"despite_expiry"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			p.writeError(w, r, shop.Errorf(shop.ErrInvalid, "the body is not a JSON object like {\"outcome\": \"succeed\"}: %s", err))
			return
		}
		outcome, refuseRefunds, despiteExpiry = body.Outcome, body.RefuseRefunds, body.DespiteExpiry
	} else {
		outcome, refuseRefunds = r.PostFormValue("outcome"), r.PostFormValue("refuse_refunds") == "on"
		despiteExpiry = r.PostFormValue("despite_expiry") == "on"
	}
	// Checked before the switch is set: a bad request changes nothing.
	if err := checkOutcome(outcome); err != nil {
		p.writeError(w, r, err)
		return
	}
	if refuseRefunds {
		if err := p.SetRefuseRefunds(r.Context(), id, true); err != nil {
			p.writeError(w, r, err)
			return
		}
	}
	status, err := p.startPay(r.Context(), payRequest{IntentID: id, Outcome: outcome, DespiteExpiry: despiteExpiry})
	if err != nil {
		p.writeError(w, r, err)
		return
	}
	if !isJSON {
		http.Redirect(w, r, "/demopay/pay/"+id, http.StatusSeeOther)
		return
	}
	if want := map[string]string{OutcomeSucceed: StatusSucceeded, OutcomeFail: StatusFailed}[outcome]; status != want {
		p.writeError(w, r, shop.Errorf(shop.ErrConflict, "intent %s was already %s", id, status))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "status": status})
}

// isForm reports whether a request is a form's submission (the page's);
// anything else is read as JSON, the API's, whatever header a client
// forgot.
func isForm(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
}

func checkOutcome(outcome string) error {
	if outcome != OutcomeSucceed && outcome != OutcomeFail {
		return shop.Errorf(shop.ErrInvalid, "outcome %q: want %q or %q", outcome, OutcomeSucceed, OutcomeFail)
	}
	return nil
}

// handleIntent handles "GET /demopay/intents/{intent}": the intent, its
// refunds and its events with their deliveries, as JSON.
func (p *Provider) handleIntent(w http.ResponseWriter, r *http.Request) {
	view, err := p.intentView(r.Context(), r.PathValue("intent"))
	if err != nil {
		p.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

// handleRefuseRefunds handles "POST /demopay/intents/{intent}/refuse-refunds"
// (see SetRefuseRefunds): JSON {"refuse": true|false}, answered with JSON,
// or the page's form (refuse=true|false), answered by a redirect to the
// page.
func (p *Provider) handleRefuseRefunds(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("intent")
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	isJSON := !isForm(r)
	var refuse *bool
	if isJSON {
		var body struct {
			Refuse *bool `json:"refuse"`
		}
		if json.NewDecoder(r.Body).Decode(&body) == nil {
			refuse = body.Refuse
		}
	} else if v, err := strconv.ParseBool(r.PostFormValue("refuse")); err == nil {
		refuse = &v
	}
	if refuse == nil {
		p.writeError(w, r, shop.Errorf(shop.ErrInvalid, "want {\"refuse\": true} or {\"refuse\": false} as JSON, or refuse=true|false as a form"))
		return
	}
	if err := p.SetRefuseRefunds(r.Context(), id, *refuse); err != nil {
		p.writeError(w, r, err)
		return
	}
	if !isJSON {
		http.Redirect(w, r, "/demopay/pay/"+id, http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "refuse_refunds": *refuse})
}

// IntentView is an intent as GET /demopay/intents/{id} answers it and the
// pay page shows it.
type IntentView struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	AmountCents   int64     `json:"amount_cents"`
	Currency      string    `json:"currency"`
	CheckoutID    string    `json:"checkout_id"`
	Description   string    `json:"description"`
	ExpiresAt     time.Time `json:"expires_at"`
	Created       time.Time `json:"created"`
	RefundedCents int64     `json:"refunded_cents"`
	RefuseRefunds bool      `json:"refuse_refunds"`
	Refunds       []refund  `json:"refunds"`
	Events        []event   `json:"events"`
}

// Amount is the amount as the page shows it: "49.98 USD".
func (v IntentView) Amount() string {
	return fmt.Sprintf("%d.%02d %s", v.AmountCents/100, v.AmountCents%100, strings.ToUpper(v.Currency))
}

// Open reports whether the intent can still be paid or refused.
func (v IntentView) Open() bool { return v.Status == StatusRequiresPayment }

// ExpiresAtMs is the deadline for the page's script, in Unix milliseconds.
func (v IntentView) ExpiresAtMs() int64 { return v.ExpiresAt.UnixMilli() }

func (p *Provider) intentView(ctx context.Context, id string) (IntentView, error) {
	q := p.db.Q()
	in, err := readIntent(ctx, q, "intent_id", id)
	if store.IsNoRows(err) {
		return IntentView{}, notFound(id)
	} else if err != nil {
		return IntentView{}, fmt.Errorf("demopay: reading intent %s: %w", id, err)
	}
	view := IntentView{ID: in.ID, Status: in.shownStatus(), AmountCents: in.AmountCents, Currency: in.Currency,
		CheckoutID: in.CheckoutID, Description: in.Description, ExpiresAt: in.ExpiresAt, Created: in.Created,
		RefundedCents: in.RefundedCents, RefuseRefunds: in.RefuseRefunds}
	if view.Refunds, err = store.QueryAll(ctx, q, scanRefund, `SELECT `+refundColumns+` FROM demopay_refunds
		WHERE intent_id = $1 ORDER BY created_at_ms, refund_id`, id); err != nil {
		return IntentView{}, fmt.Errorf("demopay: reading the refunds of intent %s: %w", id, err)
	}
	if view.Events, err = store.QueryAll(ctx, q, scanEvent, `SELECT event_id, type, created_at_ms, attempts, last_error, delivered_at_ms
		FROM demopay_events WHERE intent_id = $1 ORDER BY created_at_ms, event_id`, id); err != nil {
		return IntentView{}, fmt.Errorf("demopay: reading the events of intent %s: %w", id, err)
	}
	return view, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client left: no one reads the answer
}

// errorStatus maps the shop's error kinds that the provider returns.
var errorStatus = map[error]int{shop.ErrInvalid: http.StatusBadRequest, shop.ErrNotFound: http.StatusNotFound, shop.ErrConflict: http.StatusConflict}

// writeError answers {"error": message}: a shop error's message, which is
// meant for the client, or "internal error", the details going to the log.
func (p *Provider) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var shopErr *shop.Error
	if errors.As(err, &shopErr) {
		if status, ok := errorStatus[shopErr.Kind]; ok {
			writeJSON(w, status, map[string]string{"error": shopErr.Message})
			return
		}
	}
	p.logger.Error("request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
}

func mustSub(fsys embed.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
