-- Market-data warehouse (design §3). Natural keys are the primary keys, except on
-- option_marks: an ART index there halves bulk-load speed, so the loader (the only writer)
-- enforces that key with an anti-join and the `market_option_marks_unique_key` check verifies it.
CREATE SCHEMA market;

CREATE SEQUENCE market.batch_id_seq START 1;

CREATE TABLE market.ingest_batches (
    batch_id          BIGINT PRIMARY KEY,
    file_path         VARCHAR NOT NULL,
    file_sha256       VARCHAR NOT NULL,
    file_bytes        BIGINT NOT NULL,
    format            VARCHAR NOT NULL,
    kind              VARCHAR NOT NULL,
    source            VARCHAR NOT NULL,
    replace_conflicts BOOLEAN NOT NULL,
    rows_read         BIGINT NOT NULL,
    inserted          BIGINT NOT NULL,
    already_present   BIGINT NOT NULL,
    conflicts         BIGINT NOT NULL,
    replaced          BIGINT NOT NULL,
    rejected          BIGINT NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ NOT NULL,
    package_version   VARCHAR NOT NULL,
    duckdb_version    VARCHAR NOT NULL
);

-- Every row a load did not insert as new data, with why: 'invalid' (failed validation),
-- 'duplicate' (same key twice in one file with different values) or 'conflict' (key exists
-- with a different value). `record` is the 1-based data record in the file (header excluded).
CREATE TABLE market.rejected_rows (
    batch_id    BIGINT NOT NULL,
    file_path   VARCHAR NOT NULL,
    record      BIGINT,
    column_name VARCHAR,
    category    VARCHAR NOT NULL,
    reason      VARCHAR NOT NULL,
    raw         VARCHAR
);

-- What `--replace` overwrote: the previous row, kept so that nothing is lost.
CREATE TABLE market.superseded_rows (
    batch_id   BIGINT NOT NULL,
    table_name VARCHAR NOT NULL,
    previous   VARCHAR NOT NULL
);

CREATE TABLE market.prices (
    asset    VARCHAR NOT NULL,
    date     DATE NOT NULL,
    source   VARCHAR NOT NULL,
    open     DOUBLE,
    high     DOUBLE,
    low      DOUBLE,
    close    DOUBLE NOT NULL,
    volume   DOUBLE,
    batch_id BIGINT NOT NULL,
    PRIMARY KEY (asset, date, source)
);

CREATE TABLE market.implied_vol (
    asset      VARCHAR NOT NULL,
    date       DATE NOT NULL,
    source     VARCHAR NOT NULL,
    tenor_days INTEGER NOT NULL,
    iv         DOUBLE NOT NULL,
    iv_open    DOUBLE,
    iv_high    DOUBLE,
    iv_low     DOUBLE,
    batch_id   BIGINT NOT NULL,
    PRIMARY KEY (asset, date, source, tenor_days)
);

CREATE TABLE market.funding (
    asset            VARCHAR NOT NULL,
    date             DATE NOT NULL,
    venue            VARCHAR NOT NULL,
    source           VARCHAR NOT NULL,
    rate_8h_mean     DOUBLE NOT NULL,
    rate_8h_abs_mean DOUBLE,
    batch_id         BIGINT NOT NULL,
    PRIMARY KEY (asset, date, venue, source)
);

CREATE TABLE market.option_marks (
    snapshot_ts             TIMESTAMPTZ NOT NULL,
    instrument_name         VARCHAR NOT NULL,
    source                  VARCHAR NOT NULL,
    asset                   VARCHAR NOT NULL,
    option_type             VARCHAR NOT NULL,
    strike                  DOUBLE NOT NULL,
    expiry                  TIMESTAMPTZ NOT NULL,
    time_to_maturity        DOUBLE,
    underlying_price        DOUBLE,
    underlying_name         VARCHAR,
    index_price             DOUBLE NOT NULL,
    futures_price           DOUBLE,
    futures_instrument_name VARCHAR,
    bid_price               DOUBLE,
    ask_price               DOUBLE,
    mark_price              DOUBLE NOT NULL,
    mid_price               DOUBLE,
    bid_ask_spread          DOUBLE,
    implied_volatility      DOUBLE NOT NULL,
    delta                   DOUBLE,
    vega                    DOUBLE,
    open_interest           DOUBLE,
    volume                  DOUBLE,
    volume_usd              DOUBLE,
    batch_id                BIGINT NOT NULL
);
