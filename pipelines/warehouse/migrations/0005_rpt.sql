-- Rendered reports (design §8): where each went and the SHA-256 of every file written.
CREATE SCHEMA rpt;

CREATE TABLE rpt.reports (
    report_id  VARCHAR NOT NULL,   -- proposal id, calibration id or backtest run id
    kind       VARCHAR NOT NULL,   -- proposal | calibration | backtest
    title      VARCHAR NOT NULL,
    written_at TIMESTAMPTZ NOT NULL,
    out_dir    VARCHAR NOT NULL,
    files      JSON NOT NULL,      -- file -> sha256
    PRIMARY KEY (report_id, kind)
);
