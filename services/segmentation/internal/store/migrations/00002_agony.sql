-- +goose Up
-- The agony of each customer the feedback service reported on, with the
-- time of the mark it comes from (microseconds), so that an older event
-- replayed later changes nothing. Kept apart from seg_features because
-- agony may be reported before segmentation has seen the customer's first
-- order; seg_features.agony copies it once they have one.
CREATE TABLE seg_agony (
    customer_id TEXT PRIMARY KEY,
    agony       INTEGER NOT NULL,
    as_of       BIGINT NOT NULL,
    event_id    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- +goose Down
DROP TABLE seg_agony;
