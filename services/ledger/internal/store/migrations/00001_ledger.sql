-- +goose Up
-- Times are Unix milliseconds (UTC); 0 means "never" for expires_at.
CREATE TABLE accounts (
    customer_id        TEXT PRIMARY KEY,
    balance            BIGINT NOT NULL,
    lifetime_earned    BIGINT NOT NULL,
    shortfall          BIGINT NOT NULL,
    tier               TEXT NOT NULL,
    tier_since         BIGINT NOT NULL,
    reviewed_at        BIGINT NOT NULL,
    referral_code      TEXT NOT NULL,
    referred_by        TEXT NOT NULL,
    paid_orders        BIGINT NOT NULL,
    birth_month        INTEGER NOT NULL,
    birth_day          INTEGER NOT NULL,
    last_birthday_year INTEGER NOT NULL,
    updated_at         BIGINT NOT NULL
){{.WithoutRowID}};
CREATE UNIQUE INDEX accounts_referral_code ON accounts (referral_code);

-- The append-only ledger. seq orders entries; entry_id is derived from
-- what caused the entry, so a second attempt at the same movement is a
-- unique-key conflict, never a second movement.
CREATE TABLE entries (
    seq           {{.Serial}},
    entry_id      TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    kind          INTEGER NOT NULL,
    points        BIGINT NOT NULL,
    shortfall     BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    rule          TEXT NOT NULL,
    source_ref    TEXT NOT NULL,
    actor         TEXT NOT NULL,
    reason        TEXT NOT NULL,
    order_source  TEXT NOT NULL,
    order_id      TEXT NOT NULL,
    occurred_at   BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    recorded_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX entries_entry_id ON entries (entry_id);
CREATE INDEX entries_customer ON entries (customer_id, seq);

-- Earned points, consumed oldest first; lot_id is the earning entry's id.
CREATE TABLE lots (
    lot_id      TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    points      BIGINT NOT NULL,
    remaining   BIGINT NOT NULL,
    earned_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    order_key   TEXT NOT NULL,
    warned      INTEGER NOT NULL
){{.WithoutRowID}};
CREATE INDEX lots_open ON lots (customer_id, remaining);
CREATE INDEX lots_expiring ON lots (expires_at, remaining);

-- Which lots each consuming entry took points from.
CREATE TABLE lot_uses (
    entry_id TEXT NOT NULL,
    lot_id   TEXT NOT NULL,
    points   BIGINT NOT NULL,
    PRIMARY KEY (entry_id, lot_id)
){{.WithoutRowID}};

-- Qualifying spend for tiers (signed: refunds subtract).
CREATE TABLE spend (
    customer_id TEXT NOT NULL,
    ref         TEXT NOT NULL,
    at          BIGINT NOT NULL,
    amount      BIGINT NOT NULL,
    PRIMARY KEY (customer_id, ref)
){{.WithoutRowID}};
CREATE INDEX spend_at ON spend (customer_id, at);

-- Orders seen (placed or paid): what a paid order earned, to claw it back,
-- and the last event sequence applied, so an order's events apply in order.
CREATE TABLE orders (
    source       TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    base_total   BIGINT NOT NULL,
    qualifying   BIGINT NOT NULL,
    proportional BIGINT NOT NULL,
    full_points  BIGINT NOT NULL,
    reversed     BIGINT NOT NULL,
    refunded     BIGINT NOT NULL,
    unqualified  BIGINT NOT NULL,
    closed       INTEGER NOT NULL,
    paid_at      BIGINT NOT NULL,
    paid         INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    expired_credit BIGINT NOT NULL,
    PRIMARY KEY (source, order_id)
){{.WithoutRowID}};

-- Order events already applied: the consumer's idempotency.
CREATE TABLE processed_events (
    event_id     TEXT PRIMARY KEY,
    processed_at BIGINT NOT NULL
){{.WithoutRowID}};

-- Movements per UTC day and kind, for GetProgrammeStats: each transaction
-- adds its entries here, so statistics read days, not entries. Rows are
-- sharded by customer so that concurrent transactions rarely wait on one
-- row.
CREATE TABLE entry_days (
    day       BIGINT NOT NULL,
    kind      INTEGER NOT NULL,
    shard     INTEGER NOT NULL,
    points    BIGINT NOT NULL,
    shortfall BIGINT NOT NULL,
    PRIMARY KEY (day, kind, shard)
){{.WithoutRowID}};

-- Redemptions of each reward, for stock; the row is locked while a
-- redemption of the reward is decided.
CREATE TABLE reward_stock (
    reward_id TEXT PRIMARY KEY,
    redeemed  BIGINT NOT NULL
){{.WithoutRowID}};

-- +goose Down
DROP TABLE reward_stock;
DROP TABLE entry_days;
DROP TABLE processed_events;
DROP TABLE orders;
DROP TABLE spend;
DROP TABLE lot_uses;
DROP TABLE lots;
DROP TABLE entries;
DROP TABLE accounts;
