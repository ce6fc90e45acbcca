-- +goose Up
-- The rollup by local day in each reporting time zone
-- (FEEDBACK_SCORE_TIME_ZONES), kept with the quarter-hour one: scores by
-- day, week or month in those zones read one row per day, segment and kind
-- instead of 96. day is the local date as days since 1970-01-01.
CREATE TABLE score_days (
    zone      TEXT NOT NULL,
    day       BIGINT NOT NULL,
    segment   INTEGER NOT NULL,
    kind      INTEGER NOT NULL,
    responses BIGINT NOT NULL,
    high      BIGINT NOT NULL,
    low       BIGINT NOT NULL,
    score_sum BIGINT NOT NULL,
    PRIMARY KEY (zone, day, segment, kind)
){{.WithoutRowID}};

-- The zones score_days is kept for: a zone added to the configuration is
-- built from the responses at start-up, one removed is dropped.
CREATE TABLE score_zones (
    zone     TEXT PRIMARY KEY,
    built_at BIGINT NOT NULL
){{.WithoutRowID}};

-- +goose Down
DROP TABLE score_zones;
DROP TABLE score_days;
