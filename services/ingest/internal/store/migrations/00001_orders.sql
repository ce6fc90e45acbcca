-- +goose Up
-- Identity keys are keyed hashes (HMAC-SHA-256) of a platform customer id or
-- a normalised e-mail; the clear text is never stored.
CREATE TABLE identity_keys (
    key_hash    TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX identity_keys_customer ON identity_keys (customer_id);

CREATE TABLE orders (
    source         TEXT NOT NULL,
    order_id       TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    status         INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    base_currency  TEXT NOT NULL,
    total          BIGINT NOT NULL,
    base_total     BIGINT NOT NULL,
    refunded       BIGINT NOT NULL,
    base_refunded  BIGINT NOT NULL,
    events         INTEGER NOT NULL,
    first_seen_at  BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (source, order_id)
);

-- One row per canonical event. The primary key (source, order_id, kind,
-- refund_id) makes ingestion exactly once; event_id is derived from it. The
-- key clusters an order's events together, and shops' order ids mostly
-- grow, so inserts touch few pages.
CREATE TABLE order_events (
    source      TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    kind        INTEGER NOT NULL,
    refund_id   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    ingested_at BIGINT NOT NULL,
    payload     {{.Bytes}} NOT NULL,
    PRIMARY KEY (source, order_id, kind, refund_id)
);

-- +goose Down
DROP TABLE order_events;
DROP TABLE orders;
DROP TABLE identity_keys;
