-- +goose Up
-- Scores read the responses themselves at the edges of a period that does
-- not start or end on a quarter hour.
CREATE INDEX responses_at ON responses (responded_at);

-- +goose Down
DROP INDEX responses_at;
