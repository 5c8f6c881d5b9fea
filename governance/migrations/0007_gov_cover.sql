-- The audit log covers what is shown (issue 13): the hash of the audit entry behind each state
-- row (a vote, an activation, a proposal's submission), so that a chain rewritten and re-hashed
-- from some entry on is caught at the first entry a state row still remembers.
CREATE TABLE gov.audit_links (
    table_name VARCHAR NOT NULL,   -- approvals | activations | proposals
    row_key    VARCHAR NOT NULL,   -- proposal_id/member | activation seq | proposal_id
    audit_seq  BIGINT NOT NULL,
    audit_hash VARCHAR NOT NULL,
    PRIMARY KEY (table_name, row_key)
);
