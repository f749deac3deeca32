package web

import (
	"fmt"
	"io/fs"
)

// assets are the page's files (the embedded static directory) at their
// root. fs.Sub fails only on an invalid path, which "static" is not: a
// failure would be a bug, and stops the program at its start.
var assets = func() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(fmt.Sprintf("web: the embedded page: %v", err))
	}
	return sub
}()

// routes lists every route the shop answers, one line each.
func (s *Server) routes() {
	// The page.
	s.mux.Handle("GET /{$}", handleIndex(assets))
	s.mux.Handle("GET /static/{path...}", handleStatic(assets))
	s.mux.Handle("GET /console", handleConsole(assets))

	// The seed's API, kept as it was.
	s.mux.Handle("GET /product", handleProduct(s.db))
	// In production (a webhook secret set) orders are shown to anyone
	// without the payment ids a payment report names.
	private := s.opts.WebhookSecrets != nil
	s.mux.Handle("GET /orders", handleOrders(s.db, private))
	s.mux.Handle("GET /order/{id}", handleOrder(s.db, private))
	s.mux.Handle("POST /restock", s.operator(handleRestock(s.db)))
	s.mux.Handle("POST /checkout/{key}", handleCheckout(s.checkout, s.guard))
	s.mux.Handle("POST /payment_webhook/{payment_id}/{status}", handlePaymentWebhook(s.checkout, s.opts.WebhookSecrets))
	s.mux.Handle("POST /crash_application", s.operator(handleCrash(s.logger, s.opts.CrashFunc)))

	// Beside it.
	s.mux.Handle("GET /api/products", handleProducts(s.db))
	s.mux.Handle("POST /api/checkouts/{key}", handleCartCheckout(s.checkout, s.guard))
	s.mux.Handle("GET /api/checkouts/{key}", handleFindCheckout(s.checkout))
	s.mux.Handle("POST /api/checkouts/{key}/cancel", handleCancelCheckout(s.checkout))
	s.mux.Handle("GET /api/payments/{payment_id}", handleFindPayment(s.checkout))
	s.mux.Handle("POST /api/payment_events", handlePaymentEvents(s.checkout, s.opts.Events))
	s.mux.Handle("GET /api/audit", s.operator(handleAudit(s.db)))
	s.mux.Handle("GET /api/workflows", s.operator(handleWorkflows(s.checkout)))
	s.mux.Handle("GET /api/workflows/{id}", s.operator(handleWorkflow(s.checkout)))
	s.mux.Handle("GET /api/workflows/{id}/events", s.operator(s.handleWorkflowEvents()))
	s.mux.Handle("GET /api/checkouts/{key}/progress", s.handleProgress())
	s.mux.Handle("GET /api/checkouts/{key}/events", s.handleProgressEvents())
	s.mux.Handle("POST /api/workflows/{id}/resume", s.operator(s.handleWorkflowAction("resume")))
	s.mux.Handle("POST /api/workflows/{id}/cancel", s.operator(s.handleWorkflowAction("cancel")))
	s.mux.Handle("POST /api/workflows/{id}/fork", s.operator(s.handleWorkflowAction("fork")))
	s.mux.Handle("GET /api/console/workflows", s.operator(handleConsoleWorkflows(s.checkout)))
	s.mux.Handle("GET /api/console/find", s.operator(handleConsoleFind(s.checkout)))
	s.mux.Handle("GET /api/console/stuck", s.operator(handleStuck(s.checkout, s.staleAfter())))
	s.mux.Handle("GET /api/operator/actions", s.operator(handleOperatorActions(s.db)))
	s.mux.Handle("GET /api/operator/session", s.handleSession())
	s.mux.Handle("POST /api/operator/session", s.handleSignIn())
	s.mux.Handle("DELETE /api/operator/session", s.operator(s.handleSignOut()))
	if s.opts.ProviderPages != nil {
		s.mux.Handle("/demopay/", s.opts.ProviderPages)
	}
	s.mux.Handle("GET /healthz", handleHealth(s.db, s.checkout))
	s.mux.Handle("GET /livez", handleLive())
	s.mux.Handle("GET /readyz", handleReady(&s.draining, handleHealth(s.db, s.checkout)))
	s.mux.Handle("GET /metrics", s.operator(handleMetrics(s.registry)))
}
