-- +goose Up
-- The interval of a customer's prediction (the 10th to the 90th percentile
-- the parameters' uncertainty allows; has_interval is 0 without one), and
-- why a customer has no prediction (withheld, segment.Withheld).
ALTER TABLE seg_features ADD COLUMN has_interval INTEGER NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN purchases_low DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN purchases_high DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN clv_low BIGINT NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN clv_high BIGINT NOT NULL DEFAULT 0;
ALTER TABLE seg_features ADD COLUMN withheld INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE seg_features DROP COLUMN has_interval;
ALTER TABLE seg_features DROP COLUMN purchases_low;
ALTER TABLE seg_features DROP COLUMN purchases_high;
ALTER TABLE seg_features DROP COLUMN clv_low;
ALTER TABLE seg_features DROP COLUMN clv_high;
ALTER TABLE seg_features DROP COLUMN withheld;
