package main

import "time"

// The stop budget, in one place. On SIGTERM the server answers 503 on
// /readyz for its -drain while it still serves; then it shuts HTTP down,
// letting the requests in flight finish for up to httpShutdownTimeout;
// then it stops DBOS, whose workflows in flight stay pending for the next
// start, for up to dbosShutdownTimeout; then, when it traces, it sends the
// spans not yet exported, for up to tracesFlushTimeout. Past the budget
// the server exits anyway, with status 1 and what was in flight left
// pending. The
// supervisor, when there is one, kills it supervisorSlack after the
// budget. A deployment gives the shop more than stopBudget (supervised:
// stopBudget plus supervisorSlack) before its own SIGKILL: Kubernetes'
// terminationGracePeriodSeconds, systemd's TimeoutStopSec, compose's
// stop_grace_period.
const (
	httpShutdownTimeout = 10 * time.Second
	dbosShutdownTimeout = 10 * time.Second
	tracesFlushTimeout  = 2 * time.Second
	supervisorSlack     = 5 * time.Second
)

// stopBudget is the longest from SIGTERM to the server's exit.
func stopBudget(drain time.Duration) time.Duration {
	return drain + httpShutdownTimeout + dbosShutdownTimeout + tracesFlushTimeout
}
