// Package receipt emails a customer a receipt when their order is paid,
// dispatched or refunded, once per stage, through an outbox in the shop's
// database, by SMTP or, without a mail server, into the log.
//
// # Exactly once, and what is left of it
//
// A receipt is written to the receipts table by Enqueue, in the transaction
// that moves its order to the receipt's stage: the change and its receipt
// commit together or not at all, so a committed change never has no receipt.
// Deliver sends it and then marks it sent, so a Deliver after a completed
// one sends nothing, whoever runs it and however often (a DBOS step re-run
// after a crash, the watcher that sweeps Pending). Two deliverers at once
// take turns through a claim on the row: the loser gets ErrInFlight.
//
// What is left is one window, and it cannot be closed from this side of
// SMTP: from the moment the server has taken the message (before its 250 to
// the end of DATA is on its way back) until the mark's commit. A crash or a
// lost connection in it leaves the receipt unsent in the table, and the
// next Deliver, once the dead deliverer's claim has run out (40 s), sends
// it a second time. That duplicate is the same message, Message-ID and Date
// included, so a mail system that deduplicates by Message-ID shows it once,
// and any reader can tell it for a copy. The window is the answer's trip
// back plus one UPDATE's commit; outside it a receipt is never sent twice,
// and, with a watcher delivering what Pending lists, never left unsent.
package receipt
