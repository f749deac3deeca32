package web

import (
	"io/fs"
	"net/http"
)

// routes lists every route the shop answers, one line each.
func (s *Server) routes() {
	assets, _ := fs.Sub(static, "static")

	// The page.
	s.mux.Handle("GET /{$}", handleIndex(assets))
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(assets)))

	// The seed's API, kept as it was.
	s.mux.Handle("GET /product", handleProduct(s.logger, s.db))
	s.mux.Handle("GET /orders", handleOrders(s.logger, s.db))
	s.mux.Handle("GET /order/{id}", handleOrder(s.logger, s.db))
	s.mux.Handle("POST /restock", handleRestock(s.logger, s.db))
	s.mux.Handle("POST /checkout/{key}", handleCheckout(s.logger, s.checkout))
	s.mux.Handle("POST /payment_webhook/{payment_id}/{status}", handlePaymentWebhook(s.logger, s.checkout, s.opts.WebhookSecret))
	s.mux.Handle("POST /crash_application", handleCrash(s.logger, s.opts.CrashFunc))

	// Beside it.
	s.mux.Handle("GET /api/products", handleProducts(s.logger, s.db))
	s.mux.Handle("GET /api/audit", handleAudit(s.logger, s.db))
	s.mux.Handle("GET /healthz", handleHealth(s.logger, s.db))
}
