package store

import (
	"context"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
)

// Contact is whom a checkout is for: personal data, kept out of DBOS's
// records of the workflow (see migrations/shared/0015_checkout_contacts.sql).
type Contact struct {
	Email  string // where the receipts go; "" for none
	Client string // who asked (an address); "" for none
}

// SaveContact records whom the checkout of checkoutID is for, until its
// placeOrder step takes it (TakeContact). A second request for the key
// leaves the first's contact as it is.
func SaveContact(ctx context.Context, q dbos.Querier, checkoutID string, c Contact, now time.Time) error {
	if _, err := q.Exec(ctx, `INSERT INTO checkout_contacts (checkout_id, email, client, created_at_ms) VALUES ($1, $2, $3, $4)
		ON CONFLICT (checkout_id) DO NOTHING`, checkoutID, c.Email, c.Client, now.UnixMilli()); err != nil {
		return fmt.Errorf("recording the contact of checkout %s: %w", checkoutID, err)
	}
	return nil
}

// TakeContact returns and deletes the contact of the checkout of
// checkoutID, in tx, the transaction that places its order; none, when
// the key's request saved none or it was taken already.
func TakeContact(ctx context.Context, tx dbos.Querier, checkoutID string) (Contact, error) {
	var c Contact
	err := tx.QueryRow(ctx, `DELETE FROM checkout_contacts WHERE checkout_id = $1 RETURNING email, client`, checkoutID).Scan(&c.Email, &c.Client)
	if err != nil && !IsNoRows(err) {
		return c, fmt.Errorf("taking the contact of checkout %s: %w", checkoutID, err)
	}
	return c, nil
}

// PruneContacts deletes the contacts saved before cutoff that no checkout
// took, and returns how many.
func PruneContacts(ctx context.Context, tx dbos.Querier, cutoff time.Time) (int64, error) {
	res, err := tx.Exec(ctx, `DELETE FROM checkout_contacts WHERE created_at_ms < $1`, cutoff.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("pruning the checkouts' contacts: %w", err)
	}
	return res.RowsAffected()
}
