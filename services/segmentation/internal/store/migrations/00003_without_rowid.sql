-- +goose Up
-- Nothing reads scores by segment (the hot store answers membership), so
-- the index only cost a write per changed segment.
DROP INDEX seg_scores_segment;
{{if .WithoutRowID}}
-- SQLite: tables keyed by text keep their rows in the key's B-tree (WITHOUT
-- ROWID) instead of a rowid table plus an index. A batch touches customers
-- all over the key space, and every B-tree page it dirties is written to
-- the WAL at commit and again at the checkpoint, so one tree instead of
-- two halves the pages a batch writes.
-- seg_features stays a rowid table: its rows carry a customer's purchase
-- days (about 11 bytes a day) and, from 00004, the scores, and rows that
-- large lower a WITHOUT ROWID tree's fan-out (SQLite advises it for rows
-- under about a twentieth of a page); measured 35 % slower for customers
-- of 120 purchase days.

CREATE TABLE seg_orders_next (
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
){{.WithoutRowID}};
INSERT INTO seg_orders_next SELECT source, order_id, customer_id, status, paid_at, value, refunded, discounted, channel FROM seg_orders;
DROP TABLE seg_orders;
ALTER TABLE seg_orders_next RENAME TO seg_orders;

CREATE TABLE seg_processed_next (
    event_id     TEXT PRIMARY KEY,
    processed_at BIGINT NOT NULL
){{.WithoutRowID}};
INSERT INTO seg_processed_next SELECT event_id, processed_at FROM seg_processed;
DROP TABLE seg_processed;
ALTER TABLE seg_processed_next RENAME TO seg_processed;

CREATE TABLE seg_scores_next (
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
INSERT INTO seg_scores_next SELECT customer_id, r, f, m, segment, flags, predicted, expected_purchases, horizon_days, p_alive,
    order_value, clv, scored_at FROM seg_scores;
DROP TABLE seg_scores;
ALTER TABLE seg_scores_next RENAME TO seg_scores;

CREATE TABLE seg_agony_next (
    customer_id TEXT PRIMARY KEY,
    agony       INTEGER NOT NULL,
    as_of       BIGINT NOT NULL,
    event_id    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
){{.WithoutRowID}};
INSERT INTO seg_agony_next SELECT customer_id, agony, as_of, event_id, updated_at FROM seg_agony;
DROP TABLE seg_agony;
ALTER TABLE seg_agony_next RENAME TO seg_agony;
{{end}}
-- +goose Down
CREATE INDEX seg_scores_segment ON seg_scores (segment, customer_id);
