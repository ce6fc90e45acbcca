-- +goose Up
-- Messages the relay could not publish for a reason retrying would not
-- cure (too large for the bus, no stream takes the subject, malformed
-- headers), moved here in the transaction that takes them out of the
-- outbox, so that the rows behind them flow on and an operator can look
-- at them and requeue them.
CREATE TABLE outbox_parked (
    msg_id     TEXT NOT NULL PRIMARY KEY,
    subject    TEXT NOT NULL,
    headers    {{.Bytes}},
    payload    {{.Bytes}} NOT NULL,
    created_at BIGINT NOT NULL,
    parked_at  BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    detail     TEXT NOT NULL
);

-- +goose Down
DROP TABLE outbox_parked;
