package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/widgetstore/widgetstore/internal/checkout"
	"github.com/widgetstore/widgetstore/internal/shop"
	"github.com/widgetstore/widgetstore/internal/store"
)

// restockLevel is what the restock button tops every product up to, as the
// seed's did; maxRestockLevel bounds the level an operator may ask for.
const (
	restockLevel    = 100
	maxRestockLevel = 1_000_000_000
)

// ordersListed bounds GET /orders.
const ordersListed = 100

type productJSON struct {
	ID          int64   `json:"product_id"`
	Name        string  `json:"product"`
	Description string  `json:"description"`
	Inventory   int     `json:"inventory"`
	PriceCents  int64   `json:"price_cents"`
	Price       float64 `json:"price"`        // the seed's decimal price, for its clients
	MaxQuantity int     `json:"max_quantity"` // the most one checkout may buy: clients learn the limit here
}

func toProductJSON(p shop.Product) productJSON {
	return productJSON{ID: p.ID, Name: p.Name, Description: p.Description, Inventory: p.Inventory,
		PriceCents: p.PriceCents, Price: float64(p.PriceCents) / 100, MaxQuantity: shop.MaxQuantity}
}

type orderJSON struct {
	ID                int64            `json:"order_id"`
	LegacyStatus      int              `json:"order_status"` // the seed's integer status
	Status            shop.OrderStatus `json:"status"`
	CancelReason      string           `json:"cancel_reason"`
	ProductID         int64            `json:"product_id"`
	ProductName       string           `json:"product"`
	Quantity          int              `json:"quantity"`
	TotalCents        int64            `json:"total_cents"`
	DispatchSteps     int              `json:"dispatch_steps"`
	ProgressRemaining int              `json:"progress_remaining"`
	PaymentID         string           `json:"payment_id,omitempty"`
	PaidAt            *time.Time       `json:"paid_at,omitempty"` // when its payment was taken; none while unpaid
	UpdatedAt         time.Time        `json:"last_update_time"`
}

// toOrderJSON is an order as the seed's API shows it, to anyone: in
// production (private), without its payment id, which is what a payment
// report names, so that no one learns another customer's.
func toOrderJSON(o shop.Order, private bool) orderJSON {
	if private {
		o.PaymentID = ""
	}
	now := time.Now()
	j := orderJSON{ID: o.ID, LegacyStatus: o.Status.LegacyCode(), Status: o.Status, CancelReason: o.CancelReason,
		ProductID: o.ProductID, ProductName: o.ProductName, Quantity: o.Quantity, TotalCents: o.TotalCents,
		DispatchSteps: o.DispatchSteps, ProgressRemaining: o.ProgressRemaining(now), PaymentID: o.PaymentID, UpdatedAt: o.LastUpdate(now)}
	if !o.PaidAt.IsZero() {
		j.PaidAt = &o.PaidAt
	}
	return j
}

// handleIndex handles "GET /": the page.
func handleIndex(assets fs.FS) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, assets, "index.html")
	})
}

// handleProduct handles "GET /product": the seed's one product, the first
// of the catalog.
func handleProduct(db *store.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		products, err := store.ListProducts(r.Context(), db.Q())
		if err != nil {
			writeError(w, r, err)
			return
		}
		if len(products) == 0 {
			writeError(w, r, shop.Errorf(shop.ErrNotFound, "the catalog is empty"))
			return
		}
		writeJSON(w, r, http.StatusOK, toProductJSON(products[0]))
	})
}

// handleProducts handles "GET /api/products": the whole catalog.
func handleProducts(db *store.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		products, err := store.ListProducts(r.Context(), db.Q())
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := make([]productJSON, len(products))
		for i, p := range products {
			out[i] = toProductJSON(p)
		}
		writeJSON(w, r, http.StatusOK, out)
	})
}

// handleOrders handles "GET /orders": the newest orders first; private,
// without their payment ids.
func handleOrders(db *store.DB, private bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		orders, err := store.ListOrders(r.Context(), db.Q(), ordersListed)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := make([]orderJSON, len(orders))
		for i, o := range orders {
			out[i] = toOrderJSON(o, private)
		}
		writeJSON(w, r, http.StatusOK, out)
	})
}

// handleOrder handles "GET /order/{id}"; private, without its payment id.
func handleOrder(db *store.DB, private bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id <= 0 {
			writeError(w, r, shop.Errorf(shop.ErrInvalid, "order id must be a positive integer"))
			return
		}
		order, err := store.GetOrder(r.Context(), db.Q(), id)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, toOrderJSON(order, private))
	})
}

// handleRestock handles "POST /restock": every product back up to 100, or
// to the level of an optional JSON body {"level": 5000} (a load test needs
// more stock than the page's button gives).
func handleRestock(db *store.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := struct {
			Level int `json:"level"`
		}{Level: restockLevel}
		if err := decode(r, &body); err != nil {
			writeError(w, r, err)
			return
		}
		if body.Level < 0 || body.Level > maxRestockLevel {
			writeError(w, r, shop.Errorf(shop.ErrInvalid, "level must be between 0 and %d", maxRestockLevel))
			return
		}
		n, err := db.Restock(r.Context(), body.Level)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, map[string]int{"restocked": n})
	})
}

// handleCheckout handles "POST /checkout/{key}". The key is the client's
// idempotency key: the same key always answers the same payment id and
// places one order. The body is optional JSON {"product_id", "quantity",
// "email"} (email, for receipts, optional too); without one it buys one of
// the seed's widget. It answers the payment id
// as text, as the seed did. A client starting checkouts too fast, or
// holding as many units awaiting payment as it may, is answered 429.
func handleCheckout(co *checkout.Checkout, guard *checkoutGuard) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := struct {
			ProductID int64  `json:"product_id"`
			Quantity  int    `json:"quantity"`
			Email     string `json:"email"` // where the receipts go; optional
		}{ProductID: 1, Quantity: 1}
		if err := decode(r, &body); err != nil {
			writeError(w, r, err)
			return
		}
		// Malformed requests are answered before they count.
		key := r.PathValue("key")
		for _, err := range []error{shop.ValidateKey(key), shop.ValidateQuantity(body.Quantity), validateEmail(body.Email)} {
			if err != nil {
				writeError(w, r, err)
				return
			}
		}
		client, err := guard.admit(r, key)
		if err != nil {
			writeError(w, r, err)
			return
		}
		noteWorkflow(r, key)
		paymentID, err := co.Start(r.Context(), key, checkout.Request{ProductID: body.ProductID, Quantity: body.Quantity, Email: body.Email, Client: client})
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeText(w, r, paymentID)
	})
}

// handlePaymentWebhook handles "POST /payment_webhook/{payment_id}/{status}",
// the payment provider's report. It answers, as text, the id of the order
// once the checkout has settled it. A redelivery answers the same. With
// secrets, a report must be signed with one of them.
func handlePaymentWebhook(co *checkout.Checkout, secrets [][]byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if secrets != nil && !slices.ContainsFunc(secrets, func(secret []byte) bool {
			return hmac.Equal([]byte(r.Header.Get(SignatureHeader)), []byte(SignWebhook(secret, r.PathValue("payment_id"), r.PathValue("status"))))
		}) {
			writeError(w, r, shop.Errorf(shop.ErrDenied, "missing or wrong %s", SignatureHeader))
			return
		}
		status, err := shop.ParsePaymentStatus(r.PathValue("status"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		// Only ids of the shop's own form reach a query: PostgreSQL
		// refuses a NUL byte or invalid UTF-8 with an error of its own.
		if err := shop.ValidatePaymentID(r.PathValue("payment_id")); err != nil {
			writeError(w, r, err)
			return
		}
		order, err := co.Pay(r.Context(), r.PathValue("payment_id"), status)
		noteWorkflow(r, order.CheckoutID)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeText(w, r, strconv.FormatInt(order.ID, 10))
	})
}

// SignatureHeader carries a payment webhook's signature.
const SignatureHeader = "Webhook-Signature"

// SignWebhook is the signature of the payment provider's report that
// paymentID is status ("paid" or "failed"): "sha256=" and the hex HMAC-SHA256
// of "<paymentID>/<status>" under secret.
func SignWebhook(secret []byte, paymentID, status string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(paymentID + "/" + status))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// handleCrash handles "POST /crash_application": it kills the process, as
// a crash would, for the demo. The supervisor starts it again.
func handleCrash(logger *slog.Logger, crash func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if crash == nil {
			writeError(w, r, shop.Errorf(shop.ErrNotFound, "the crash button is turned off"))
			return
		}
		logger.Warn("crash button pressed: killing the process")
		writeJSON(w, r, http.StatusAccepted, map[string]string{"status": "crashing"})
		http.NewResponseController(w).Flush() // the answer goes out before the process dies
		crash()
	})
}

// handleHealth handles "GET /healthz": 200 once the database answers and
// takes writes, 503 while it refuses them (a full disk). It says nothing
// about the process: a probe needs no more.
func handleHealth(db *store.DB, co *checkout.Checkout) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := store.ListProducts(r.Context(), db.Q()); err != nil {
			writeError(w, r, err)
			return
		}
		if err := co.Healthy(); err != nil {
			writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{"error": "the database refuses writes"})
			return
		}
		writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// handleLive handles "GET /livez": 200 whenever the process answers. It
// touches no database, so a liveness probe restarts a process that is
// stuck, never one whose database is away (a restart would not bring it
// back).
func handleLive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// handleReady handles "GET /readyz": whether to send this instance
// traffic. 503 from the start of a shutdown (draining), so a load balancer
// stops sending requests while the server still answers those on their
// way; otherwise what health says (the database answers and takes writes).
// DBOS is launched before the server exists and shut down after it
// stops, so a request that reaches this handler finds it running.
func handleReady(draining *atomic.Bool, health http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{"error": "shutting down"})
			return
		}
		health.ServeHTTP(w, r)
	})
}

// handleAudit handles "GET /api/audit": the breaches of the shop's
// invariants (stock against its ledger, orders against the stock they
// hold and the money they keep), and the books of money. An empty list
// of breaches means the books balance.
func handleAudit(db *store.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		breaches, err := store.Audit(r.Context(), db.Q())
		if err != nil {
			writeError(w, r, err)
			return
		}
		money, err := store.Books(r.Context(), db.Q())
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, map[string]any{"breaches": breaches, "money": money})
	})
}

// workflowsListed bounds GET /api/workflows.
const workflowsListed = 100

type workflowJSON struct {
	ID         string    `json:"workflow_id"`
	Name       string    `json:"name"`
	Status     string    `json:"status"`
	Error      string    `json:"error,omitempty"`
	ExecutorID string    `json:"executor_id"`
	Attempts   int       `json:"attempts"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Resumable  bool      `json:"resumable"` // Resume would run it on: the page shows its button
}

// handleWorkflows handles "GET /api/workflows?status=ERROR,CANCELLED": the
// newest workflows, in the given statuses or in any.
func handleWorkflows(co *checkout.Checkout) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var statuses []string
		if q := r.URL.Query().Get("status"); q != "" {
			statuses = strings.Split(q, ",")
		}
		workflows, err := co.Workflows(r.Context(), statuses, workflowsListed)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := make([]workflowJSON, len(workflows))
		for i, wf := range workflows {
			out[i] = toWorkflowJSON(wf)
		}
		writeJSON(w, r, http.StatusOK, out)
	})
}

func toWorkflowJSON(wf checkout.Workflow) workflowJSON {
	return workflowJSON{ID: wf.ID, Name: wf.Name, Status: wf.Status, Error: wf.Error, ExecutorID: wf.ExecutorID,
		Attempts: wf.Attempts, CreatedAt: wf.CreatedAt, UpdatedAt: wf.UpdatedAt, Resumable: wf.Resumable}
}

// maxWorkflowIDLength bounds a workflow id in a URL: the shop's are a key
// with a suffix, or a payment id with a prefix.
const maxWorkflowIDLength = 2 * shop.MaxKeyLength

// validateWorkflowID refuses, before any query, a workflow id that no
// workflow can have: too long, not UTF-8, or holding a control character
// such as NUL (PostgreSQL answers those with an error of its own).
func validateWorkflowID(id string) error {
	if len(id) > maxWorkflowIDLength || !utf8.ValidString(id) || strings.ContainsFunc(id, unicode.IsControl) {
		return shop.Errorf(shop.ErrInvalid, "malformed workflow id: want at most %d printable characters", maxWorkflowIDLength)
	}
	return nil
}
