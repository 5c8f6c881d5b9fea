-- Account snapshots margined in a shadow run (issue 19): a snapshot is in force from its
-- from_day until the next one's. `positions` is the canonical JSON the SHA-256 is over; the
-- audit entry that recorded it carries the SHA-256, so `mwb verify` catches an edited row.
CREATE TABLE gov.shadow_accounts (
    proposal_id  VARCHAR NOT NULL,
    from_day     DATE NOT NULL,
    sha256       VARCHAR NOT NULL,
    positions    VARCHAR NOT NULL,
    audit_seq    BIGINT NOT NULL,
    PRIMARY KEY (proposal_id, from_day)
);
