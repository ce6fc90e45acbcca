-- +goose Up
-- One row per customer: the features every order event updates. days is the
-- compact list of purchase days (see store.encodeDays), channels a JSON
-- object of paid orders per channel.
CREATE TABLE seg_features (
    customer_id       TEXT PRIMARY KEY,
    currency          TEXT NOT NULL,
    orders            BIGINT NOT NULL,
    total_value       BIGINT NOT NULL,
    discounted_orders BIGINT NOT NULL,
    refunds           BIGINT NOT NULL,
    refunded_value    BIGINT NOT NULL,
    channels          TEXT NOT NULL,
    days              {{.Bytes}} NOT NULL,
    agony             INTEGER NOT NULL DEFAULT 0,
    updated_at        BIGINT NOT NULL
);

-- What a refund or cancellation must take back, per order.
CREATE TABLE seg_orders (
    source      TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    status      INTEGER NOT NULL,
    paid_at     BIGINT NOT NULL,
    value       BIGINT NOT NULL,
    refunded    BIGINT NOT NULL,
    discounted  INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    PRIMARY KEY (source, order_id)
);

-- Events already applied: a redelivery finds its id here and changes
-- nothing.
CREATE TABLE seg_processed (
    event_id     TEXT PRIMARY KEY,
    processed_at BIGINT NOT NULL
);

-- The latest score of each customer.
CREATE TABLE seg_scores (
    customer_id        TEXT PRIMARY KEY,
    r                  INTEGER NOT NULL,
    f                  INTEGER NOT NULL,
    m                  INTEGER NOT NULL,
    segment            INTEGER NOT NULL,
    flags              INTEGER NOT NULL,
    predicted          INTEGER NOT NULL,
    expected_purchases DOUBLE PRECISION NOT NULL,
    horizon_days       INTEGER NOT NULL,
    p_alive            DOUBLE PRECISION NOT NULL,
    order_value        BIGINT NOT NULL,
    clv                BIGINT NOT NULL,
    scored_at          BIGINT NOT NULL
);
CREATE INDEX seg_scores_segment ON seg_scores (segment, customer_id);

-- Every model fit, kept with its time; the latest is in use.
CREATE TABLE seg_models (
    seq       {{.Serial}},
    fitted_at BIGINT NOT NULL,
    customers BIGINT NOT NULL,
    model     TEXT NOT NULL
);

-- The scoring state between runs: RFM boundaries, VIP threshold and the
-- CLV distribution of the last run (one row).
CREATE TABLE seg_scoring (
    id         INTEGER PRIMARY KEY,
    scored_at  BIGINT NOT NULL,
    state      TEXT NOT NULL
);

-- +goose Down
DROP TABLE seg_scoring;
DROP TABLE seg_models;
DROP TABLE seg_scores;
DROP TABLE seg_processed;
DROP TABLE seg_orders;
DROP TABLE seg_features;
