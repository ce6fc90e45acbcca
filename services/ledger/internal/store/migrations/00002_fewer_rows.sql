-- +goose Up
-- Fewer rows per paid order. A lot is its earning entry: the entry row
-- carries what is left of it (remaining, NULL for an entry that earned no
-- lot) and whether its expiry was announced; the movement an entry
-- records never changes. Its order is the entry's order_source and
-- order_id. Qualifying spend is the paid orders' (qualifying less what
-- refunds took back, dated when the order was paid), read from orders.
ALTER TABLE entries ADD COLUMN remaining BIGINT;
ALTER TABLE entries ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;
UPDATE entries SET remaining = l.remaining, warned = l.warned FROM lots l WHERE l.lot_id = entries.entry_id;
CREATE INDEX entries_open ON entries (customer_id) WHERE remaining > 0;
CREATE INDEX entries_expiring ON entries (expires_at) WHERE remaining > 0;
DROP TABLE lots;

-- Orders are keyed by order id first: a batch looks its orders up by id
-- within a source, and with the source first (one or a few values)
-- PostgreSQL without statistics yet scanned all of a source's orders.
CREATE TABLE orders_by_id (
    source         TEXT NOT NULL,
    order_id       TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    base_total     BIGINT NOT NULL,
    qualifying     BIGINT NOT NULL,
    proportional   BIGINT NOT NULL,
    full_points    BIGINT NOT NULL,
    reversed       BIGINT NOT NULL,
    refunded       BIGINT NOT NULL,
    unqualified    BIGINT NOT NULL,
    closed         INTEGER NOT NULL,
    paid_at        BIGINT NOT NULL,
    paid           INTEGER NOT NULL,
    last_seq       INTEGER NOT NULL,
    expired_credit BIGINT NOT NULL,
    PRIMARY KEY (order_id, source)
){{.WithoutRowID}};
INSERT INTO orders_by_id (source, order_id, customer_id, base_total, qualifying, proportional, full_points, reversed, refunded, unqualified, closed, paid_at, paid, last_seq, expired_credit)
    SELECT source, order_id, customer_id, base_total, qualifying, proportional, full_points, reversed, refunded, unqualified, closed, paid_at, paid, last_seq, expired_credit FROM orders;
DROP TABLE orders;
ALTER TABLE orders_by_id RENAME TO orders;
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
CREATE TABLE orders_by_source (
    source         TEXT NOT NULL,
    order_id       TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    base_total     BIGINT NOT NULL,
    qualifying     BIGINT NOT NULL,
    proportional   BIGINT NOT NULL,
    full_points    BIGINT NOT NULL,
    reversed       BIGINT NOT NULL,
    refunded       BIGINT NOT NULL,
    unqualified    BIGINT NOT NULL,
    closed         INTEGER NOT NULL,
    paid_at        BIGINT NOT NULL,
    paid           INTEGER NOT NULL,
    last_seq       INTEGER NOT NULL,
    expired_credit BIGINT NOT NULL,
    PRIMARY KEY (source, order_id)
){{.WithoutRowID}};
INSERT INTO orders_by_source (source, order_id, customer_id, base_total, qualifying, proportional, full_points, reversed, refunded, unqualified, closed, paid_at, paid, last_seq, expired_credit)
    SELECT source, order_id, customer_id, base_total, qualifying, proportional, full_points, reversed, refunded, unqualified, closed, paid_at, paid, last_seq, expired_credit FROM orders;
DROP TABLE orders;
ALTER TABLE orders_by_source RENAME TO orders;

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
