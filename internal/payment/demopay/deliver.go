package demopay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/payment"
)

// Outcomes of a payment, as POST /demopay/pay/{intent} takes them.
const (
	OutcomeSucceed = "succeed"
	OutcomeFail    = "fail"
)

// payRequest is the input of the workflow "demopay.Pay".
type payRequest struct {
	IntentID string
	Outcome  string // OutcomeSucceed or OutcomeFail
	// DespiteExpiry: the demo's switch (PayDespiteExpiry).
	DespiteExpiry bool `json:",omitempty"`
}

// eventSettled is the Pay workflow's DBOS event that tells the intent's
// status once settled, for the request that started it to answer with.
const eventSettled = "settled"

// payWorkflowID is the id of intent id's Pay workflow: one per intent, so
// paying twice (a double click, a retried request) starts it once, and the
// first outcome wins.
func payWorkflowID(id string) string { return "demopay:" + id }

// deliveryWorkflowID is the id of event id's Deliver workflow.
func deliveryWorkflowID(id string) string { return "demopay:" + id }

// settlement is the outcome of the Pay workflow's first step.
type settlement struct {
	Status  string
	EventID string // "" when the intent was settled before
}

// transactionRetries bounds the retries of the workflows' own
// transactions: a workflow whose step failed for good has used its id, and
// a moment of a database out of reach must not cost a payment.
const transactionRetries = 10

// pay is the workflow "demopay.Pay": it settles an intent with the
// customer's outcome and records the event that tells it, in one step,
// then delivers the event to the shop until the shop acknowledges it.
func (p *Provider) pay(ctx dbos.Context, req payRequest) (string, error) {
	settled, err := dbos.RunAsTransaction(ctx, p.ds, func(ctx context.Context, tx dbos.Tx) (settlement, error) {
		status, typ := StatusSucceeded, payment.EventSucceeded
		if req.Outcome == OutcomeFail {
			status, typ = StatusFailed, payment.EventFailed
		}
		res, err := tx.Exec(ctx, `UPDATE demopay_intents SET status = $2, settled_at_ms = $3
			WHERE intent_id = $1 AND status = $4 AND (expired_at_ms IS NULL OR $5)`,
			req.IntentID, status, time.Now().UnixMilli(), StatusRequiresPayment, req.DespiteExpiry)
		if err != nil {
			return settlement{}, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return settlement{}, err
		}
		in, err := readIntent(ctx, tx, "intent_id", req.IntentID)
		if err != nil {
			return settlement{}, fmt.Errorf("reading intent %s: %w", req.IntentID, err)
		}
		if n == 0 {
			return settlement{Status: in.shownStatus()}, nil
		}
		// The event's id is made here, in the step: a step replayed after
		// a crash returns the recorded one, never a second event.
		eventID := newID("evt_")
		return settlement{Status: in.Status, EventID: eventID}, insertEvent(ctx, tx, eventID, typ, in)
	}, dbos.WithStepName("demopay.settle"), dbos.WithStepMaxRetries(transactionRetries))
	if err != nil {
		return "", err
	}
	if err := dbos.SetEvent(ctx, eventSettled, settled.Status); err != nil {
		return "", err
	}
	if settled.EventID == "" {
		return settled.Status, nil
	}
	return settled.Status, p.deliver(ctx, settled.EventID)
}

// deliverEvent is the workflow "demopay.Deliver": it delivers one event,
// a refund's.
func (p *Provider) deliverEvent(ctx dbos.Context, eventID string) (struct{}, error) {
	return struct{}{}, p.deliver(ctx, eventID)
}

// startDelivery starts the delivery of event id, unless it was started
// before: the workflow's id is the event's.
func (p *Provider) startDelivery(id string) error {
	if p.dbosCtx == nil {
		return errors.New("demopay: Register was not called")
	}
	if _, err := dbos.RunWorkflow(p.dbosCtx, p.deliverEvent, id, dbos.WithWorkflowID(deliveryWorkflowID(id))); err != nil {
		return fmt.Errorf("demopay: starting the delivery of event %s: %w", id, err)
	}
	return nil
}

// deliver POSTs event id to the shop until a 2xx, each attempt a step,
// waiting between attempts by durable sleeps that double from
// Retry.First up to Retry.Max, and gives up once it has waited
// Retry.GiveUpAfter. A restart resumes the wait where it was.
func (p *Provider) deliver(ctx dbos.Context, id string) error {
	delay := p.cfg.Retry.First
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		// A failed attempt is the step's output, not its error: DBOS
		// records an error's text only, and the next attempt is the
		// loop's, after a durable sleep, not the step's own retry.
		failure, err := dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
			return p.post(ctx, id), nil
		}, dbos.WithStepName("demopay.post"))
		if err != nil {
			return err // DBOS is shutting down: the next launch goes on from here
		}
		if failure == "" {
			return nil
		}
		if waited >= p.cfg.Retry.GiveUpAfter {
			p.logger.Error("gave up delivering an event", slog.String("event", id), slog.Int("attempts", attempt), slog.String("error", failure))
			return fmt.Errorf("demopay: event %s undelivered after %d attempts over %s: %s", id, attempt, waited, failure)
		}
		p.logger.Warn("delivering an event failed; will retry", slog.String("event", id), slog.Int("attempt", attempt),
			slog.Duration("retry_in", delay), slog.String("error", failure))
		if _, err := dbos.Sleep(ctx, delay); err != nil {
			return err
		}
		waited += delay
		delay = min(2*delay, p.cfg.Retry.Max)
	}
}

// post makes one delivery attempt of event id: its JSON, signed now (each
// attempt is signed anew, so that a late one is within the shop's
// tolerance), POSTed to the webhook URL. It returns "" when the shop
// acknowledged it, else what went wrong, and records the attempt on the
// event's row. That record is not part of the step's checkpoint: an
// attempt cut short by a crash may be counted twice, and a 2xx whose
// checkpoint was lost is delivered again, which the shop takes as a
// replay.
func (p *Provider) post(ctx context.Context, id string) string {
	var payload string
	if err := p.db.Q().QueryRow(ctx, `SELECT payload FROM demopay_events WHERE event_id = $1`, id).Scan(&payload); err != nil {
		return fmt.Sprintf("reading event %s: %s", id, err)
	}
	failure := ""
	var delivered *int64
	if err := p.send(ctx, []byte(payload)); err != nil {
		failure = err.Error()
	} else {
		now := time.Now().UnixMilli()
		delivered = &now
	}
	if _, err := p.db.Q().Exec(context.WithoutCancel(ctx), `UPDATE demopay_events
		SET attempts = attempts + 1, last_error = $2, delivered_at_ms = COALESCE(delivered_at_ms, $3)
		WHERE event_id = $1`, id, failure, delivered); err != nil {
		p.logger.Warn("recording a delivery attempt failed", slog.String("event", id), slog.Any("error", err))
	}
	return failure
}

// send POSTs one signed payload to the webhook URL; anything but a 2xx is
// an error that says what the shop answered.
func (p *Provider) send(ctx context.Context, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.WebhookURL, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "widgetstore-demopay")
	req.Header.Set(payment.SignatureHeader, payment.Sign(p.cfg.SigningSecret, payload, time.Now()))
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the shop answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
