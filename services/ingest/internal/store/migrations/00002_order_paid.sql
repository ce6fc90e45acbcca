-- +goose Up
-- Whether the order's payment was accepted: an order cancelled before its
-- payment arrived is still recorded as paid when the payment comes (its
-- status stays cancelled), so that its refunds are accepted whatever order
-- the shop's events arrive in.
ALTER TABLE orders ADD COLUMN paid INTEGER NOT NULL DEFAULT 0;
UPDATE orders SET paid = 1 WHERE status IN (2, 3, 4)
    OR EXISTS (SELECT 1 FROM order_events e WHERE e.source = orders.source AND e.order_id = orders.order_id AND e.kind = 2);

-- +goose Down
ALTER TABLE orders DROP COLUMN paid;
