-- The catalog: the seed's widget first (GET /product serves it), then a few more.
INSERT INTO products (product_id, product, description, inventory, price_cents) VALUES
    (1, 'Premium Quality Widget', 'Enhance your productivity with our top-rated widgets!', 100, 9999),
    (2, 'Pocket Widget', 'All the widget you need, in a size that fits your pocket.', 50, 2499),
    (3, 'Widget Deluxe', 'Hand-finished, numbered, and shipped in a wooden box.', 10, 49900),
    (4, 'Widget Repair Kit', 'Spare springs, sprockets and a very small screwdriver.', 200, 1299)
ON CONFLICT (product_id) DO NOTHING;

-- The ledger starts with the first stock, so inventory = SUM(delta) always.
INSERT INTO inventory_ledger (product_id, order_id, delta, reason, created_at_ms)
SELECT product_id, NULL, inventory, 'initial stock', 0 FROM products;
