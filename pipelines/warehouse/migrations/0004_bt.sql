-- Backtests (design §6). A run replays history for one or two parameter sets ("current",
-- "proposed") on identical inputs; its id fingerprints everything that determines the numbers.
CREATE SCHEMA bt;

CREATE TABLE bt.runs (
    run_id           VARCHAR PRIMARY KEY,
    created_at       TIMESTAMPTZ NOT NULL,
    start_date       DATE NOT NULL,
    end_date         DATE NOT NULL,
    spec             JSON NOT NULL,      -- models, portfolios, MPOR, calibration, seed, …
    sets             JSON NOT NULL,      -- label -> parameter-set fingerprint
    data_sha256      VARCHAR NOT NULL,
    package_version  VARCHAR NOT NULL,
    library_versions JSON NOT NULL,
    elapsed_seconds  DOUBLE NOT NULL,
    cache            JSON NOT NULL       -- what was reused and what was computed
);

-- one row per day, set, portfolio, model and settlement currency
CREATE TABLE bt.daily (
    run_id       VARCHAR NOT NULL,
    set_label    VARCHAR NOT NULL,
    date         DATE NOT NULL,
    portfolio    VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    currency     VARCHAR NOT NULL,
    margin       DOUBLE NOT NULL,       -- initial margin, settlement currency
    maintenance  DOUBLE NOT NULL,
    loss         DOUBLE NOT NULL,       -- realised over the MPOR, positive = loss
    breach       BOOLEAN NOT NULL,      -- loss > margin
    fx_usd       DOUBLE NOT NULL,       -- USD per unit of the currency on the day
    notional_usd DOUBLE NOT NULL
    -- unique on (run_id, set_label, date, portfolio, model, currency) by construction; no index,
    -- because a run writes ~10^5 rows and index upkeep would dominate its storing
);

CREATE TABLE bt.summaries (
    run_id       VARCHAR NOT NULL,
    set_label    VARCHAR NOT NULL,
    portfolio    VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    currency     VARCHAR NOT NULL,
    observations INTEGER NOT NULL,
    breaches     INTEGER NOT NULL,
    zone         VARCHAR NOT NULL,
    summary      JSON NOT NULL,         -- coverage tests, breach dates, procyclicality, efficiency, stress
    PRIMARY KEY (run_id, set_label, portfolio, model, currency)
);

-- caches for fast what-ifs: keyed by a fingerprint of every input that determines the rows
CREATE TABLE bt.vol_cache (
    cache_key VARCHAR NOT NULL,
    asset     VARCHAR NOT NULL,
    date      DATE NOT NULL,
    cond_vol  DOUBLE,                   -- sigma_{s|s-1}
    std_resid DOUBLE,
    forecasts DOUBLE[] NOT NULL,        -- variance of day t+h forecast at t, h = 1..H
    PRIMARY KEY (cache_key, asset, date)
);

CREATE TABLE bt.loss_cache (
    cache_key    VARCHAR NOT NULL,      -- one portfolio over the days
    date         DATE NOT NULL,
    currency     VARCHAR NOT NULL,
    loss         DOUBLE NOT NULL,
    fx_usd       DOUBLE NOT NULL,
    notional_usd DOUBLE NOT NULL,
    PRIMARY KEY (cache_key, date, currency)
);

CREATE TABLE bt.margin_cache (
    cache_key   VARCHAR NOT NULL,       -- one model, portfolio and relevant parameters
    date        DATE NOT NULL,
    currency    VARCHAR NOT NULL,
    margin      DOUBLE NOT NULL,
    maintenance DOUBLE NOT NULL,
    PRIMARY KEY (cache_key, date, currency)
);
