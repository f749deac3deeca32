package web

import (
	"crypto/hmac"
	"io/fs"
	"net/http"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// routes lists every route the shop answers, one line each.
func (s *Server) routes() {
	assets, _ := fs.Sub(static, "static")

	// The page.
	s.mux.Handle("GET /{$}", handleIndex(assets))
	s.mux.Handle("GET /static/{path...}", handleStatic(s.logger, assets))

	// The seed's API, kept as it was.
	s.mux.Handle("GET /product", handleProduct(s.logger, s.db))
	s.mux.Handle("GET /orders", handleOrders(s.logger, s.db))
	s.mux.Handle("GET /order/{id}", handleOrder(s.logger, s.db))
	s.mux.Handle("POST /restock", s.operator(handleRestock(s.logger, s.db)))
	s.mux.Handle("POST /checkout/{key}", handleCheckout(s.logger, s.checkout, s.guard))
	s.mux.Handle("POST /payment_webhook/{payment_id}/{status}", handlePaymentWebhook(s.logger, s.checkout, s.opts.WebhookSecret))
	s.mux.Handle("POST /crash_application", s.operator(handleCrash(s.logger, s.opts.CrashFunc)))

	// Beside it.
	s.mux.Handle("GET /api/products", handleProducts(s.logger, s.db))
	s.mux.Handle("GET /api/audit", s.operator(handleAudit(s.logger, s.db)))
	s.mux.Handle("GET /api/workflows", s.operator(handleWorkflows(s.logger, s.checkout)))
	s.mux.Handle("POST /api/workflows/{id}/resume", s.operator(handleWorkflowResume(s.logger, s.checkout)))
	s.mux.Handle("GET /healthz", handleHealth(s.logger, s.db, s.checkout))
}

// operator lets a request through to h only with the operator's token,
// when there is one.
func (s *Server) operator(h http.Handler) http.Handler {
	if s.opts.OperatorToken == nil {
		return h
	}
	want := []byte("Bearer " + string(s.opts.OperatorToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hmac.Equal([]byte(r.Header.Get("Authorization")), want) {
			writeError(w, r, s.logger, shop.Errorf(shop.ErrDenied, "this is for the operator: send Authorization: Bearer <OPERATOR_TOKEN>"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
