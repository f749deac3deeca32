package store

import (
	"context"
	"fmt"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/widgetstore/widgetstore/internal/shop"
)

const productColumns = `product_id, product, description, inventory, price_cents`

func scanProduct(row dbos.Row) (shop.Product, error) {
	var p shop.Product
	err := row.Scan(&p.ID, &p.Name, &p.Description, &p.Inventory, &p.PriceCents)
	return p, err
}

// ListProducts returns the catalog in product id order.
func ListProducts(ctx context.Context, q dbos.Querier) ([]shop.Product, error) {
	products, err := QueryAll(ctx, q, scanProduct, `SELECT `+productColumns+` FROM products ORDER BY product_id`)
	if err != nil {
		return nil, fmt.Errorf("listing products: %w", err)
	}
	return products, nil
}

// GetProduct returns one product, or an error of kind shop.ErrNotFound.
func GetProduct(ctx context.Context, q dbos.Querier, id int64) (shop.Product, error) {
	p, err := scanProduct(q.QueryRow(ctx, `SELECT `+productColumns+` FROM products WHERE product_id = $1`, id))
	if IsNoRows(err) {
		return p, shop.Errorf(shop.ErrNotFound, "no product %d", id)
	}
	if err != nil {
		return p, fmt.Errorf("reading product %d: %w", id, err)
	}
	return p, nil
}
