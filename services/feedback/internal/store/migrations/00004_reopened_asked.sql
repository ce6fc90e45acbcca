-- +goose Up
-- A ticket's latest reopening, kept apart from its latest resolution so
-- that events arriving out of order fold to the same state: the ticket is
-- resolved when resolved_at > reopened_at.
ALTER TABLE tickets ADD COLUMN reopened_at BIGINT NOT NULL DEFAULT 0;

-- Customers waiting for their segment are asked again the least recently
-- asked first (refreshed_at is when they were last asked), so customers
-- segmentation keeps not knowing do not hold up the others.
DROP INDEX customers_pending;
CREATE INDEX customers_pending_asked ON customers (refreshed_at, customer_id) WHERE pending_since > 0;

-- +goose Down
DROP INDEX customers_pending_asked;
CREATE INDEX customers_pending ON customers (pending_since);
ALTER TABLE tickets DROP COLUMN reopened_at;
