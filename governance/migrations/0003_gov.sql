-- Governance registry (design §7). Parameter sets and policies are immutable documents keyed by
-- their SHA-256; activations say which set (and policy) is in force from when; every state
-- change appends one hash-chained row to gov.audit_log in the same transaction.
CREATE SCHEMA gov;

CREATE TABLE gov.parameter_sets (
    fingerprint VARCHAR PRIMARY KEY,    -- sha256 of `document` in canonical JSON
    document    JSON NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    origin      VARCHAR NOT NULL        -- genesis | proposal id
);

CREATE TABLE gov.policies (
    fingerprint VARCHAR PRIMARY KEY,
    document    JSON NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- append-only: row n+1 supersedes row n from its effective_from
CREATE TABLE gov.activations (
    seq            INTEGER PRIMARY KEY,
    parameter_set  VARCHAR NOT NULL,
    policy         VARCHAR NOT NULL,
    effective_from TIMESTAMPTZ NOT NULL,
    proposal_id    VARCHAR,               -- NULL for the genesis activation
    activated_at   TIMESTAMPTZ NOT NULL,
    audit_seq      BIGINT NOT NULL
);

CREATE TABLE gov.proposals (
    proposal_id        VARCHAR PRIMARY KEY,  -- 'P-' + fingerprint[:12]
    fingerprint        VARCHAR NOT NULL,     -- what members sign
    kind               VARCHAR NOT NULL,     -- change | rollback | policy
    title              VARCHAR NOT NULL,
    author             VARCHAR NOT NULL,
    document           JSON NOT NULL,
    base_set           VARCHAR NOT NULL,
    proposed_set       VARCHAR NOT NULL,
    proposed_policy    VARCHAR,
    policy_fingerprint VARCHAR NOT NULL,     -- the policy it was checked against
    status             VARCHAR NOT NULL,
    created_by         VARCHAR NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    effective_from     TIMESTAMPTZ,
    rolled_back_by     VARCHAR
);

-- approvals and rejections: Ed25519 signatures over 'decision:fingerprint'
CREATE TABLE gov.approvals (
    proposal_id VARCHAR NOT NULL,
    member      VARCHAR NOT NULL,
    decision    VARCHAR NOT NULL,   -- approve | reject
    signature   VARCHAR NOT NULL,   -- base64
    reason      VARCHAR NOT NULL,
    voted_at    TIMESTAMPTZ NOT NULL,
    audit_seq   BIGINT NOT NULL,
    PRIMARY KEY (proposal_id, member)
);

-- hash = sha256(canonical JSON of seq, logged_at, actor, action, subject, details, prev_hash)
CREATE TABLE gov.audit_log (
    seq       BIGINT PRIMARY KEY,
    logged_at TIMESTAMPTZ NOT NULL,
    actor     VARCHAR NOT NULL,
    action    VARCHAR NOT NULL,
    subject   VARCHAR NOT NULL,
    details   JSON NOT NULL,
    prev_hash VARCHAR NOT NULL,
    hash      VARCHAR NOT NULL
);
