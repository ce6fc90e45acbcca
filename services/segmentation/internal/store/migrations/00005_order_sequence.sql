-- +goose Up
-- The last event applied of each order (order_sequence): events of one
-- order apply in the order order-ingest numbered them, whatever order they
-- are delivered in (see ordergate). Orders stored before have -1: their
-- events are recognised by event id in seg_processed instead, until one is
-- applied. Orders seen but not paid are kept too (status 3), so that their
-- next event finds its predecessor.
ALTER TABLE seg_orders ADD COLUMN last_seq INTEGER NOT NULL DEFAULT -1;

-- +goose Down
DELETE FROM seg_orders WHERE status = 3;
ALTER TABLE seg_orders DROP COLUMN last_seq;
