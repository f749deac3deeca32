package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxAnswerBytes bounds how much of an answer is read: the shop's are tiny.
const maxAnswerBytes = 64 << 10

// shopClient makes the shop's HTTP calls, each bounded by a timeout, with
// the webhook signed and the operator's token sent when there are some.
type shopClient struct {
	client        *http.Client
	baseURL       string
	timeout       time.Duration
	webhookSecret []byte
	operatorToken string
}

func newShopClient(cfg config, baseURL string, webhookSecret []byte, operatorToken string, conns int) *shopClient {
	return &shopClient{
		client:        newHTTPClient(cfg.timeout, conns),
		baseURL:       baseURL,
		timeout:       cfg.timeout,
		webhookSecret: webhookSecret,
		operatorToken: operatorToken,
	}
}

func (s *shopClient) close() { s.client.CloseIdleConnections() }

// checkout calls "POST /checkout/{key}" for one of product; a 200 answers
// the payment id.
func (s *shopClient) checkout(ctx context.Context, key string, product int64) (int, []byte, error) {
	body := fmt.Sprintf(`{"product_id": %d, "quantity": 1}`, product)
	return s.do(ctx, http.MethodPost, "/checkout/"+url.PathEscape(key), strings.NewReader(body), nil)
}

// payment calls "POST /payment_webhook/{payment_id}/{status}" as the
// payment provider, signed when there is a secret; a 200 answers the order
// id.
func (s *shopClient) payment(ctx context.Context, paymentID, status string) (int, []byte, error) {
	header := http.Header{}
	if s.webhookSecret != nil {
		header.Set("Webhook-Signature", signWebhook(s.webhookSecret, paymentID, status))
	}
	return s.do(ctx, http.MethodPost, "/payment_webhook/"+url.PathEscape(paymentID)+"/"+url.PathEscape(status), nil, header)
}

// signWebhook is the payment provider's signature of the report that
// paymentID is status: "sha256=" and the hex HMAC-SHA256 of
// "<paymentID>/<status>" under secret. It repeats web.SignWebhook rather
// than importing the shop's web package: the signature is a wire contract
// that every build loadgen compares must honour, loadgen stays a plain
// HTTP client without DBOS and SQLite linked in, and the test checks the
// two agree.
func signWebhook(secret []byte, paymentID, status string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(paymentID + "/" + status))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// restockLevel is what loadgen tops every product up to: enough for a
// run's purchases, so that the shelf is never empty and restocks are rare.
// A restock takes the product's row lock, which every purchase of it
// waits for on PostgreSQL; topped up to the shop's default of 100 every
// 32 checkouts, a fast shop ran out while its restock waited in that
// queue (84 times in a 20 s run at 184 purchases/s), and those customers
// waited for it. The demo's shelf is topped up likewise (demoStock).
const restockLevel = 100_000

// restock calls the operator's "POST /restock", which tops every product
// up to restockLevel (a build older than the level's body tops up to 100).
func (s *shopClient) restock(ctx context.Context) error {
	level := strings.NewReader(fmt.Sprintf(`{"level": %d}`, restockLevel))
	status, body, err := s.do(ctx, http.MethodPost, "/restock", level, s.operatorHeader())
	if err != nil {
		return fmt.Errorf("restocking: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("restocking: HTTP %d: %s", status, errorMessage(body))
	}
	return nil
}

// pendingWorkflows counts the shop's PENDING workflows through the
// operator's "GET /api/workflows?status=PENDING" (which lists at most 100:
// enough to tell none from some).
func (s *shopClient) pendingWorkflows(ctx context.Context) (int, error) {
	status, body, err := s.do(ctx, http.MethodGet, "/api/workflows?status=PENDING", nil, s.operatorHeader())
	if err != nil {
		return 0, fmt.Errorf("listing pending workflows: %w", err)
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("listing pending workflows: HTTP %d: %s", status, errorMessage(body))
	}
	var workflows []json.RawMessage
	if err := json.Unmarshal(body, &workflows); err != nil {
		return 0, fmt.Errorf("listing pending workflows: %w", err)
	}
	return len(workflows), nil
}

// unfinished counts what the shop has still to do for the purchases
// made: its PENDING workflows (pendingWorkflows), and the orders paid but
// not dispatched yet (paidUndispatched). A checkout of widgetstore-5 ends
// when its order is paid, and the order is dispatched after it by the
// shop's sweep, with no workflow of its own; an older build's checkout
// stays pending until it dispatched its order.
func (s *shopClient) unfinished(ctx context.Context) (int, error) {
	pending, err := s.pendingWorkflows(ctx)
	if err != nil {
		return 0, err
	}
	undispatched, err := s.paidUndispatched(ctx)
	return pending + undispatched, err
}

// paidUndispatched counts the orders the shop has paid and not yet
// dispatched, from its "GET /metrics": the orders settled as paid less
// those dispatched, both counted since the shop started (one instance, as
// the load generator runs it).
func (s *shopClient) paidUndispatched(ctx context.Context) (int, error) {
	status, body, err := s.do(ctx, http.MethodGet, "/metrics", nil, s.operatorHeader())
	if err != nil {
		return 0, fmt.Errorf("reading the metrics: %w", err)
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("reading the metrics: HTTP %d: %s", status, errorMessage(body))
	}
	settled := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		rest, ok := strings.CutPrefix(line, `widgetstore_orders_settled_total{outcome="`)
		if !ok {
			continue
		}
		outcome, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		if settled[outcome], err = strconv.ParseFloat(strings.TrimSpace(value), 64); err != nil {
			return 0, fmt.Errorf("reading the metrics: %q: %w", line, err)
		}
	}
	return int(settled["paid"] - settled["dispatched"]), nil
}

func (s *shopClient) operatorHeader() http.Header {
	header := http.Header{}
	if s.operatorToken != "" {
		header.Set("Authorization", "Bearer "+s.operatorToken)
	}
	return header
}

// do sends a request to a path under the shop's URL, bounded by the
// timeout, and reads the answer.
func (s *shopClient) do(ctx context.Context, method, path string, body io.Reader, header http.Header) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.baseURL+path, body)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	io.Copy(io.Discard, resp.Body) // so the connection is reused
	return resp.StatusCode, answer, nil
}

// errorMessage is the "error" of a JSON error answer, else the answer.
func errorMessage(answer []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(answer, &e) == nil && e.Error != "" {
		return truncate(e.Error)
	}
	return truncate(strings.TrimSpace(string(answer)))
}

func truncate(s string) string {
	const most = 200
	if len(s) > most {
		return s[:most] + "…"
	}
	return s
}
