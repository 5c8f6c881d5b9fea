-- Calibration results (design §4). A calibration is identified by `calibration_id`
-- (as-of date + policy fingerprint); re-running it replaces its rows in one transaction.
CREATE SCHEMA calib;

CREATE TABLE calib.runs (
    calibration_id   VARCHAR PRIMARY KEY,
    as_of            DATE NOT NULL,
    policy           JSON NOT NULL,
    policy_sha256    VARCHAR NOT NULL,
    package_version  VARCHAR NOT NULL,
    library_versions JSON NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- one row per candidate model per asset; `chosen` marks the one in use
CREATE TABLE calib.fits (
    calibration_id           VARCHAR NOT NULL,
    asset                    VARCHAR NOT NULL,
    model                    VARCHAR NOT NULL,
    chosen                   BOOLEAN NOT NULL,
    kind                     VARCHAR NOT NULL,          -- garch | ewma | failed
    spec                     JSON,
    params                   JSON,
    std_errors               JSON,
    loglik                   DOUBLE,
    aic                      DOUBLE,
    bic                      DOUBLE,
    converged                BOOLEAN,
    stationary               BOOLEAN,
    persistence              DOUBLE,
    half_life_days           DOUBLE,
    unconditional_vol_annual DOUBLE,
    next_vol_annual          DOUBLE,
    ljung_box                JSON,
    on_bounds                JSON,
    error                    VARCHAR,
    fallback_reason          VARCHAR,
    price_source             VARCHAR NOT NULL,
    window_start             DATE NOT NULL,
    window_end               DATE NOT NULL,
    n_obs                    INTEGER NOT NULL,
    data_sha256              VARCHAR NOT NULL,
    library_versions         JSON NOT NULL,
    PRIMARY KEY (calibration_id, asset, model)
);

-- the chosen model's daily path: what reports chart and what correlation estimation reads
CREATE TABLE calib.fitted_series (
    calibration_id VARCHAR NOT NULL,
    asset          VARCHAR NOT NULL,
    date           DATE NOT NULL,
    log_return     DOUBLE NOT NULL,
    cond_vol       DOUBLE NOT NULL,   -- decimal daily
    std_resid      DOUBLE NOT NULL,
    PRIMARY KEY (calibration_id, asset, date)
);

CREATE TABLE calib.correlations (
    calibration_id  VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,  -- ewma | ccc | dcc | stressed
    window_name     VARCHAR NOT NULL,  -- '' or the stress window
    assets          JSON NOT NULL,
    matrix          JSON NOT NULL,
    psd_before      BOOLEAN NOT NULL,
    min_eig_before  DOUBLE NOT NULL,
    repaired        BOOLEAN NOT NULL,
    min_eig_after   DOUBLE NOT NULL,
    n_obs           INTEGER NOT NULL,
    start_date      DATE,
    end_date        DATE,
    detail          JSON NOT NULL,
    PRIMARY KEY (calibration_id, method, window_name)
);

CREATE TABLE calib.iv_dynamics (
    calibration_id VARCHAR NOT NULL,
    asset          VARCHAR NOT NULL,
    iv_source      VARCHAR NOT NULL,
    detail         JSON NOT NULL,
    PRIMARY KEY (calibration_id, asset)
);

CREATE TABLE calib.recommendations (
    calibration_id VARCHAR NOT NULL,
    parameter      VARCHAR NOT NULL,
    value          DOUBLE NOT NULL,
    unit           VARCHAR NOT NULL,
    derivation     JSON NOT NULL,
    PRIMARY KEY (calibration_id, parameter)
);
