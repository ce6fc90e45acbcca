-- +goose Up
CREATE TABLE outbox (
    seq        {{.Serial}},
    msg_id     TEXT NOT NULL UNIQUE,
    subject    TEXT NOT NULL,
    headers    {{.Bytes}},
    payload    {{.Bytes}} NOT NULL,
    created_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE outbox;
