package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
)

// Stock moves only here: by relative updates that cannot take it below
// zero, each written to inventory_ledger with its order, so the books can
// be checked at any time (Audit).

var errOutOfStock = errors.New("out of stock")

// Restock tops every product up to level, writing each top-up to the
// ledger, and returns how many products it topped up. Stock moves only by
// relative updates, so a checkout reserving at the same moment still leaves
// inventory equal to the ledger's sum.
func (db *DB) Restock(ctx context.Context, level int) (int, error) {
	var n int
	err := db.inTx(ctx, func(tx dbos.Querier) error {
		type topUp struct{ product, delta int64 }
		topUps, err := QueryAll(ctx, tx, func(row dbos.Row) (t topUp, err error) {
			return t, row.Scan(&t.product, &t.delta)
		}, `SELECT product_id, $1 - inventory FROM products WHERE inventory < $1`, level)
		if err != nil {
			return err
		}
		now := time.Now().UnixMilli()
		for _, t := range topUps {
			if err := moveStock(ctx, tx, t.product, nil, t.delta, "restock", now); err != nil {
				return err
			}
		}
		n = len(topUps)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("restocking to %d: %w", level, err)
	}
	return n, nil
}

// reserveStock takes quantity of the product from stock for the order,
// or returns errOutOfStock, with nothing written, when the stock it sees
// is short. It writes only the ledger's row, with moves_stock: the
// row's trigger applies it to the product's stock (migration 0018), on
// PostgreSQL at the commit, so that the product's row lock, for which
// every purchase of the product queues, is held for the commit alone. The
// stock is checked here in the statement's snapshot, without a lock; a
// purchase of the last units committed since fails this transaction at
// its commit as a serialization failure, and the checkout's step, retried
// by DBOS, then finds the stock short.
func reserveStock(ctx context.Context, tx dbos.Querier, product, order int64, quantity int, nowMs int64) error {
	res, err := tx.Exec(ctx, `
		INSERT INTO inventory_ledger (product_id, order_id, delta, reason, created_at_ms, moves_stock)
		SELECT product_id, $2, $3, 'reserve', $4, TRUE FROM products WHERE product_id = $1 AND inventory + $3 >= 0`,
		product, order, -int64(quantity), nowMs)
	if err != nil {
		return fmt.Errorf("reserving %d of product %d: %w", quantity, product, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return errOutOfStock
	}
	return nil
}

// moveStock changes a product's stock by delta and records why in the
// ledger. A decrease that would take the stock below zero changes nothing
// and returns errOutOfStock.
func moveStock(ctx context.Context, tx dbos.Querier, product int64, order *int64, delta int64, reason string, nowMs int64) error {
	// Too little stock takes the ledger's row back. (A purchase's
	// reservation, the hot path, is reserveStock's.)
	var entry int64
	if err := tx.QueryRow(ctx, `
		INSERT INTO inventory_ledger (product_id, order_id, delta, reason, created_at_ms)
		VALUES ($1, $2, $3, $4, $5) RETURNING entry_id`, product, order, delta, reason, nowMs).Scan(&entry); err != nil {
		return fmt.Errorf("recording a stock move of product %d: %w", product, err)
	}
	res, err := tx.Exec(ctx, `UPDATE products SET inventory = inventory + $1 WHERE product_id = $2 AND inventory + $1 >= 0`, delta, product)
	if err != nil {
		return fmt.Errorf("moving stock of product %d by %d: %w", product, delta, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM inventory_ledger WHERE entry_id = $1`, entry); err != nil {
			return fmt.Errorf("taking back the stock move of product %d: %w", product, err)
		}
		return errOutOfStock
	}
	return nil
}
