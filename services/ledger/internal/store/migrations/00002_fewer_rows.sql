-- +goose Up
-- Fewer rows per paid order. A lot is its earning entry: the entry row
-- carries what is left of it (remaining, NULL for an entry that earned no
-- lot) and whether its expiry was announced; the movement an entry
-- records never changes. Its order is the entry's order_source and
-- order_id. Qualifying spend is the paid orders' (qualifying less what
-- refunds took back, dated when the order was paid), read from orders.
ALTER TABLE entries ADD COLUMN remaining BIGINT;
ALTER TABLE entries ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;
UPDATE entries SET remaining = (SELECT l.remaining FROM lots l WHERE l.lot_id = entries.entry_id),
    warned = COALESCE((SELECT l.warned FROM lots l WHERE l.lot_id = entries.entry_id), 0);
CREATE INDEX entries_open ON entries (customer_id) WHERE remaining > 0;
CREATE INDEX entries_expiring ON entries (expires_at) WHERE remaining > 0;
DROP TABLE lots;

CREATE INDEX orders_spend ON orders (customer_id, paid_at, qualifying, unqualified);
DROP TABLE spend;

-- +goose Down
CREATE TABLE spend (
    customer_id TEXT NOT NULL,
    ref         TEXT NOT NULL,
    at          BIGINT NOT NULL,
    amount      BIGINT NOT NULL,
    PRIMARY KEY (customer_id, ref)
){{.WithoutRowID}};
CREATE INDEX spend_at ON spend (customer_id, at);
INSERT INTO spend (customer_id, ref, at, amount)
    SELECT customer_id, source || '/' || order_id, paid_at, qualifying - unqualified FROM orders
    WHERE paid = 1 AND qualifying <> unqualified;
DROP INDEX orders_spend;

CREATE TABLE lots (
    lot_id      TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    points      BIGINT NOT NULL,
    remaining   BIGINT NOT NULL,
    earned_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    order_key   TEXT NOT NULL,
    warned      INTEGER NOT NULL
){{.WithoutRowID}};
CREATE INDEX lots_open ON lots (customer_id, remaining);
CREATE INDEX lots_expiring ON lots (expires_at, remaining);
INSERT INTO lots (lot_id, customer_id, points, remaining, earned_at, expires_at, order_key, warned)
    SELECT entry_id, customer_id, points, remaining, occurred_at, expires_at,
        CASE WHEN order_id = '' THEN '' ELSE order_source || '/' || order_id END, warned
    FROM entries WHERE remaining IS NOT NULL;
DROP INDEX entries_expiring;
DROP INDEX entries_open;
ALTER TABLE entries DROP COLUMN warned;
ALTER TABLE entries DROP COLUMN remaining;
