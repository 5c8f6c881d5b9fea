-- Shadow runs (issue 19): a submitted or approved proposal's set margined beside the set in
-- force for a number of days before enactment. Every row is written with an audit entry whose
-- details carry the same record, so what `mwb shadow` shows is covered by the chain.
CREATE TABLE gov.shadows (
    proposal_id  VARCHAR PRIMARY KEY,
    shadow_set   VARCHAR NOT NULL,      -- the proposed set's fingerprint
    first_day    DATE NOT NULL,         -- the first market day margined under both sets
    days         INTEGER NOT NULL,      -- the period asked for
    started_at   TIMESTAMPTZ NOT NULL,
    audit_seq    BIGINT NOT NULL
);
CREATE TABLE gov.shadow_days (
    proposal_id  VARCHAR NOT NULL,
    day          DATE NOT NULL,
    record       VARCHAR NOT NULL,      -- JSON: both sets' margins and breaches that day
    audit_seq    BIGINT NOT NULL,
    PRIMARY KEY (proposal_id, day)
);
