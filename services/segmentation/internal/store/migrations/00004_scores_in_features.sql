-- +goose Up
-- A customer's latest score lives in their features row: a batch reads and
-- writes one row per customer instead of two (one index probe, one row
-- write). scored_at is NULL for a customer never scored.
ALTER TABLE seg_features ADD COLUMN r INTEGER NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN f INTEGER NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN m INTEGER NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN segment INTEGER NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN predicted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN expected_purchases DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN horizon_days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN p_alive DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN order_value BIGINT NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN clv BIGINT NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN scored_at BIGINT;
UPDATE seg_features SET r = s.r, f = s.f, m = s.m, segment = s.segment, flags = s.flags, predicted = s.predicted,
    expected_purchases = s.expected_purchases, horizon_days = s.horizon_days, p_alive = s.p_alive,
    order_value = s.order_value, clv = s.clv, scored_at = s.scored_at
    FROM seg_scores AS s WHERE s.customer_id = seg_features.customer_id;
DROP TABLE seg_scores;

-- +goose Down
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
){{.WithoutRowID}};
INSERT INTO seg_scores SELECT customer_id, r, f, m, segment, flags, predicted, expected_purchases, horizon_days, p_alive,
    order_value, clv, scored_at FROM seg_features WHERE scored_at IS NOT NULL;
ALTER TABLE seg_features DROP COLUMN r;
ALTER TABLE seg_features DROP COLUMN f;
ALTER TABLE seg_features DROP COLUMN m;
ALTER TABLE seg_features DROP COLUMN segment;
ALTER TABLE seg_features DROP COLUMN flags;
ALTER TABLE seg_features DROP COLUMN predicted;
ALTER TABLE seg_features DROP COLUMN expected_purchases;
ALTER TABLE seg_features DROP COLUMN horizon_days;
ALTER TABLE seg_features DROP COLUMN p_alive;
ALTER TABLE seg_features DROP COLUMN order_value;
ALTER TABLE seg_features DROP COLUMN clv;
ALTER TABLE seg_features DROP COLUMN scored_at;
