-- +goose Up
-- Times are Unix milliseconds (UTC); 0 means "not yet".

-- Survey responses, idempotent by the source's response id. comment is
-- personal data. segment is the customer's segment when the response came
-- in; segment_pending marks responses whose segment segmentation could not
-- tell yet (filled in later by the service).
CREATE TABLE responses (
    response_id     TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL,
    kind            INTEGER NOT NULL,
    score           INTEGER NOT NULL,
    channel         TEXT NOT NULL,
    comment         TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    ticket_id       TEXT NOT NULL,
    responded_at    BIGINT NOT NULL,
    segment         INTEGER NOT NULL,
    segment_pending INTEGER NOT NULL,
    recorded_at     BIGINT NOT NULL
){{.WithoutRowID}};
CREATE INDEX responses_customer ON responses (customer_id, segment_pending);

-- The measures' rollup, written in the transaction of the responses it
-- counts: per quarter hour (responded_at / 900000, which every time zone's
-- offset divides), segment and kind, the number of responses, the high
-- ones (NPS promoters, CSAT 4-5), the low ones (NPS detractors) and the sum
-- of scores. GetScores reads this, never the responses.
CREATE TABLE score_buckets (
    bucket    BIGINT NOT NULL,
    segment   INTEGER NOT NULL,
    kind      INTEGER NOT NULL,
    responses BIGINT NOT NULL,
    high      BIGINT NOT NULL,
    low       BIGINT NOT NULL,
    score_sum BIGINT NOT NULL,
    PRIMARY KEY (bucket, segment, kind)
){{.WithoutRowID}};

-- Reviews by review_key, "<platform>/<review id>"; body is personal data.
CREATE TABLE reviews (
    review_key  TEXT PRIMARY KEY,
    platform    TEXT NOT NULL,
    review_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    rating      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    product     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
){{.WithoutRowID}};
CREATE INDEX reviews_created ON reviews (created_at);

-- The seller's responses, apart from the reviews so that a response that
-- arrives before its review on the bus is kept.
CREATE TABLE review_responses (
    review_key   TEXT PRIMARY KEY,
    body         TEXT NOT NULL,
    responded_at BIGINT NOT NULL,
    recorded_at  BIGINT NOT NULL
){{.WithoutRowID}};

-- Ticket events, idempotent by event id, and each ticket's folded state.
CREATE TABLE ticket_events (
    event_id    TEXT PRIMARY KEY,
    ticket_id   TEXT NOT NULL,
    kind        INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
){{.WithoutRowID}};
CREATE TABLE tickets (
    ticket_id         TEXT PRIMARY KEY,
    customer_id       TEXT NOT NULL,
    channel           TEXT NOT NULL,
    opened_at         BIGINT NOT NULL,
    first_response_at BIGINT NOT NULL,
    resolved_at       BIGINT NOT NULL,
    answered_at       BIGINT NOT NULL,
    reopens           INTEGER NOT NULL,
    agony             INTEGER NOT NULL
){{.WithoutRowID}};
-- The sweep looks for tickets not answered and not raised yet, oldest
-- first.
CREATE INDEX tickets_waiting ON tickets (agony, answered_at, opened_at);
CREATE INDEX tickets_opened ON tickets (opened_at);

-- What segmentation last said of a customer. pending_since > 0: it could
-- not be asked (or did not know the customer) since then.
CREATE TABLE customers (
    customer_id   TEXT PRIMARY KEY,
    segment       INTEGER NOT NULL,
    clv           BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    known         INTEGER NOT NULL,
    refreshed_at  BIGINT NOT NULL,
    pending_since BIGINT NOT NULL
){{.WithoutRowID}};
CREATE INDEX customers_pending ON customers (pending_since);

-- Recovery cases, one per occasion of agony; resolved ones are kept as
-- the record of the outcome.
CREATE TABLE cases (
    case_id     TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    reason      INTEGER NOT NULL,
    source_ref  TEXT NOT NULL,
    opened_at   BIGINT NOT NULL,
    claimed_by  TEXT NOT NULL,
    claimed_at  BIGINT NOT NULL,
    resolved_at BIGINT NOT NULL,
    outcome     INTEGER NOT NULL,
    note        TEXT NOT NULL
){{.WithoutRowID}};
CREATE INDEX cases_open ON cases (resolved_at, customer_id);

-- +goose Down
DROP TABLE cases;
DROP TABLE customers;
DROP TABLE tickets;
DROP TABLE ticket_events;
DROP TABLE review_responses;
DROP TABLE reviews;
DROP TABLE score_buckets;
DROP TABLE responses;
