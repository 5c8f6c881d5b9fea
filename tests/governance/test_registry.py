"""The registry in DuckDB: what is recorded, what is refused and audited, history, rollback,
policy changes and tamper detection (issue 5 §4-6, "Must show")."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import T0, make_policy, member_key

from governance.parameters import default_parameter_set
from governance.proposals import parse_proposal
from governance.registry import GovernanceError, Registry, TamperedError
from governance.signing import sign
from governance.workflow import Refusal, Status

GENESIS = default_parameter_set()


def _doc(title: str = "Lower the ETH haircut", **changes):
    changes = changes or {"collateral.ETH.haircut": 0.08}
    return parse_proposal(
        {"title": title, "author": "risk", "motivation": "vol fell", "changes": changes}
    )


def _approve(registry: Registry, proposal_id: str, *names: str, now=T0):
    fingerprint = registry.state(proposal_id).proposal.fingerprint
    for name in names:
        state = registry.vote(
            proposal_id,
            member=name,
            decision="approve",
            signature=sign(member_key(name), "approve", fingerprint),
            now=now,
        )
    return state


def _counts(registry: Registry) -> dict[str, int]:
    tables = ["parameter_sets", "policies", "activations", "proposals", "approvals", "audit_log"]
    return {t: registry.con.execute(f"SELECT count(*) FROM gov.{t}").fetchone()[0] for t in tables}


def _last(registry: Registry):
    return registry.audit_entries()[-1]


def _passed(registry: Registry, doc=None, *, now=T0, effective_from=None):
    state = registry.submit(doc or _doc(), actor="risk", now=now)
    _approve(registry, state.id, "alice", "bob", now=now)
    return registry.enact(state.id, actor="ops", now=now, effective_from=effective_from)


def test_initialise_once_with_a_committee_that_can_reach_quorum(tmp_path, registry) -> None:
    with pytest.raises(GovernanceError, match="already initialised"):
        registry.initialise(GENESIS, make_policy(), actor="admin", now=T0)
    from pipelines.warehouse import connect

    con = connect(tmp_path / "other.duckdb")
    with pytest.raises(GovernanceError, match="committee has 0 member"):
        Registry(con).initialise(GENESIS, make_policy(committee=[]), actor="admin", now=T0)
    assert not Registry(con).initialised()
    con.close()


def test_a_refused_proposal_records_nothing_but_the_refusal(registry) -> None:
    before = _counts(registry)
    with pytest.raises(Refusal) as caught:
        registry.submit(
            _doc(**{"collateral.ETH.haircut": 0.30, "underlyings.BTC.pm.price_range": 0.5}),
            actor="risk",
            now=T0,
        )
    message = str(caught.value)
    assert "collateral.ETH.haircut: 0.1 -> 0.3 changes by more than the allowed 0.05" in message
    assert "underlyings.BTC.pm.price_range = 0.5 is above the maximum 0.4" in message
    after = _counts(registry)
    assert after == {**before, "audit_log": before["audit_log"] + 1}
    entry = _last(registry)
    assert entry.action == "proposal_refused" and entry.details["reason"] == message
    assert {v["path"] for v in entry.details["violations"]} == {
        "collateral.ETH.haircut",
        "underlyings.BTC.pm.price_range",
    }
    assert registry.verify().ok


def test_the_whole_workflow_and_which_set_was_active_when(registry) -> None:
    state = registry.submit(_doc(), actor="risk", now=T0 + timedelta(days=1))
    assert registry.proposals()[0].status is Status.SUBMITTED
    _approve(registry, state.id, "alice", "carol", now=T0 + timedelta(days=2))
    assert registry.proposals()[0].status is Status.APPROVED
    effective = T0 + timedelta(days=10)
    enacted = registry.enact(
        state.id, actor="ops", now=T0 + timedelta(days=3), effective_from=effective
    )
    assert enacted.status is Status.ENACTED
    proposed = enacted.proposal.proposed_fingerprint
    # the head is what new proposals change; what was in force follows effective_from
    assert registry.head().parameter_set == proposed
    assert registry.active_at(T0 - timedelta(seconds=1)) is None
    assert registry.active_at(T0).parameter_set == GENESIS.fingerprint
    assert (
        registry.active_at(effective - timedelta(microseconds=1)).parameter_set
        == GENESIS.fingerprint
    )
    assert registry.active_at(effective).parameter_set == proposed
    assert registry.parameter_set(proposed).get("collateral.ETH.haircut") == 0.08
    assert registry.last_changed() == {"collateral.ETH.haircut": effective}
    actions = [e.action for e in registry.audit_entries()]
    assert actions == ["initialised", "submitted", "approved", "approved", "enacted"]
    record = registry.proposals()[0]
    assert record.approvals == ("alice", "carol") and record.effective_from == effective
    assert registry.verify().ok


def test_votes_by_non_members_or_over_other_proposals_are_refused_and_audited(registry) -> None:
    state = registry.submit(_doc(), actor="risk", now=T0)
    other = registry.submit(_doc("other", **{"collateral.BTC.haircut": 0.07}), actor="risk", now=T0)
    attempts = [
        (
            "mallory",
            sign(member_key("mallory"), "approve", state.proposal.fingerprint),
            "not a member",
        ),
        (
            "carol",
            sign(member_key("carol"), "approve", other.proposal.fingerprint),
            "not carol's approve",
        ),
        (
            "carol",
            sign(member_key("alice"), "approve", state.proposal.fingerprint),
            "not carol's approve",
        ),
    ]
    for member, signature, needle in attempts:
        with pytest.raises(Refusal, match=needle):
            registry.vote(state.id, member=member, decision="approve", signature=signature, now=T0)
        assert _last(registry).action == "approve_refused" and _last(registry).subject == state.id
    _approve(registry, state.id, "alice")
    with pytest.raises(Refusal, match="alice has already voted"):
        _approve(registry, state.id, "alice")
    assert _last(registry).action == "approve_refused"
    # one valid approval of two: enacting is refused, and the attempt is audited
    with pytest.raises(Refusal, match="submitted, not approved"):
        registry.enact(state.id, actor="ops", now=T0)
    assert _last(registry).action == "enact_refused"
    assert registry.con.execute("SELECT count(*) FROM gov.approvals").fetchone()[0] == 1
    assert registry.verify().ok


@pytest.mark.parametrize(
    ("member", "signer", "over", "needle"),
    [
        ("mallory", "mallory", "self", "'mallory' is not by a committee member"),
        ("carol", "carol", "other", "carol's approve signature is not over this proposal"),
        ("carol", "alice", "self", "carol's approve signature is not over this proposal"),
        (None, None, None, "1 valid approval(s), the quorum is 2"),
    ],
    ids=["non-member", "other-proposal", "duplicated-signature", "below-quorum"],
)
def test_enact_refuses_votes_forged_in_the_database(registry, member, signer, over, needle) -> None:
    state = registry.submit(_doc(), actor="risk", now=T0)
    other = registry.submit(_doc("other", **{"collateral.BTC.haircut": 0.07}), actor="risk", now=T0)
    _approve(registry, state.id, "alice")
    if member is not None:  # someone with write access adds a vote row by hand …
        fingerprint = (state if over == "self" else other).proposal.fingerprint
        registry.con.execute(
            "INSERT INTO gov.approvals VALUES (?, ?, 'approve', ?, '', ?, 99)",
            [state.id, member, sign(member_key(signer), "approve", fingerprint), T0],
        )
    # … and marks the proposal approved
    registry.con.execute(
        "UPDATE gov.proposals SET status = 'approved' WHERE proposal_id = ?", [state.id]
    )
    head = registry.head()
    with pytest.raises(Refusal) as caught:
        registry.enact(state.id, actor="ops", now=T0)
    assert needle in str(caught.value)
    entry = _last(registry)
    assert (
        entry.action == "enact_refused"
        and entry.subject == state.id
        and needle in entry.details["reason"]
    )
    assert registry.head() == head  # nothing was activated
    assert not registry.verify().ok  # and the forgery shows in verification


def test_cool_down_counts_from_when_a_change_took_effect(registry) -> None:
    _passed(registry, now=T0)
    again = registry.submit(
        _doc("again", **{"collateral.ETH.haircut": 0.07}), actor="risk", now=T0 + timedelta(days=1)
    )
    _approve(registry, again.id, "alice", "bob", now=T0 + timedelta(days=1))
    with pytest.raises(
        Refusal, match=r"collateral\.ETH\.haircut changed on 2026-01-05 09:00 UTC; the 7-day"
    ):
        registry.enact(again.id, actor="ops", now=T0 + timedelta(days=2))
    assert _last(registry).action == "enact_refused"
    enacted = registry.enact(again.id, actor="ops", now=T0 + timedelta(days=7))
    assert enacted.status is Status.ENACTED
    assert (
        registry.parameter_set(registry.head().parameter_set).get("collateral.ETH.haircut") == 0.07
    )


def test_a_stale_proposal_cannot_be_enacted_after_the_set_moved(registry) -> None:
    first = registry.submit(_doc(), actor="risk", now=T0)
    second = registry.submit(_doc("btc", **{"collateral.BTC.haircut": 0.07}), actor="risk", now=T0)
    _approve(registry, first.id, "alice", "bob")
    _approve(registry, second.id, "alice", "bob")
    registry.enact(first.id, actor="ops", now=T0)
    with pytest.raises(Refusal, match="re-propose against the active set"):
        registry.enact(second.id, actor="ops", now=T0)


def test_rollback_restores_the_previous_set_and_marks_what_it_undid(registry) -> None:
    change = _passed(registry, now=T0)
    rollback = parse_proposal(
        {
            "title": "Roll back",
            "author": "risk",
            "motivation": "breaches",
            "kind": "rollback",
            "rollback_to": GENESIS.fingerprint,
        }
    )
    # a rollback inside the cool-down is allowed: it returns to a set the committee enacted before
    enacted = _passed(registry, rollback, now=T0 + timedelta(days=1))
    assert enacted.status is Status.ENACTED
    assert registry.head().parameter_set == GENESIS.fingerprint
    statuses = {r.proposal_id: r for r in registry.proposals()}
    assert statuses[change.id].status is Status.ROLLED_BACK
    assert statuses[change.id].rolled_back_by == enacted.id
    assert [a.parameter_set for a in registry.activations()] == [
        GENESIS.fingerprint,
        change.proposal.proposed_fingerprint,
        GENESIS.fingerprint,
    ]
    assert (
        registry.active_at(T0 + timedelta(hours=12)).parameter_set
        == change.proposal.proposed_fingerprint
    )
    assert [e.action for e in registry.audit_entries()][-2:] == ["enacted", "rolled_back"]
    assert registry.verify().ok
    # only sets that were in force can be rolled back to
    nowhere = rollback.model_copy(update={"rollback_to": "ab" * 32})
    with pytest.raises(Refusal, match="no such parameter set"):
        registry.submit(nowhere, actor="risk", now=T0 + timedelta(days=2))


def test_a_policy_proposal_changes_the_committee_rules_for_what_follows(registry) -> None:
    pending = registry.submit(_doc(), actor="risk", now=T0)
    stricter = parse_proposal(
        {
            "title": "Quorum of three",
            "author": "risk",
            "motivation": "more eyes",
            "kind": "policy",
            "policy": make_policy(quorum=3).model_dump(mode="json"),
        }
    )
    enacted = _passed(registry, stricter, now=T0)
    assert registry.policy().quorum == 3
    assert registry.head().parameter_set == GENESIS.fingerprint  # the set did not change
    assert registry.head().policy == make_policy(quorum=3).fingerprint
    assert enacted.changes[0].path == "quorum"
    # proposals checked against the old policy must be re-proposed
    with pytest.raises(Refusal, match="is in force now; re-propose"):
        _approve(registry, pending.id, "alice")
    fresh = registry.submit(_doc("again"), actor="risk", now=T0)
    assert _approve(registry, fresh.id, "alice", "bob").status is Status.SUBMITTED
    assert _approve(registry, fresh.id, "carol").status is Status.APPROVED


def test_drafts_are_idempotent_and_promoted_by_submitting(registry) -> None:
    draft = registry.submit(_doc(), actor="trigger", now=T0, draft=True)
    again = registry.submit(_doc(), actor="trigger", now=T0 + timedelta(days=1), draft=True)
    assert draft.id == again.id and again.status is Status.DRAFT
    assert [e.action for e in registry.audit_entries()] == ["initialised", "drafted"]
    with pytest.raises(Refusal, match="votes are closed"):
        _approve(registry, draft.id, "alice")
    submitted = registry.submit(_doc(), actor="risk", now=T0 + timedelta(days=1))
    assert submitted.id == draft.id and registry.proposals()[0].status is Status.SUBMITTED
    with pytest.raises(Refusal, match="already recorded"):
        registry.submit(_doc(), actor="risk", now=T0 + timedelta(days=1))
    assert registry.verify().ok


# --------------------------------------------------------------------------- tampering


def _tamper(registry: Registry, sql: str) -> None:
    registry.con.execute(sql)


@pytest.mark.parametrize(
    ("sql", "first_bad", "needle"),
    [
        ("UPDATE gov.audit_log SET actor = 'mallory' WHERE seq = 3", 3, "edited"),
        (
            "UPDATE gov.audit_log SET details = json_object('decision', 'approve') WHERE seq = 4",
            4,
            "edited",
        ),
        ("DELETE FROM gov.audit_log WHERE seq = 2", 3, "deleted or reordered"),
        (
            "UPDATE gov.audit_log SET seq = CASE seq WHEN 3 THEN 4 ELSE 3 END WHERE seq IN (3, 4)",
            3,
            "",
        ),
    ],
    ids=["edit-actor", "edit-details", "delete", "reorder"],
)
def test_tampering_with_the_log_names_the_first_bad_entry(registry, sql, first_bad, needle) -> None:
    _passed(registry, now=T0)
    assert registry.verify().ok
    _tamper(registry, sql)
    report = registry.verify()
    assert not report.ok
    assert report.chain.first_bad == first_bad
    assert needle in report.chain.problem


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        (
            "DELETE FROM gov.audit_log WHERE seq = (SELECT max(seq) FROM gov.audit_log)",
            "audit log records 1 activations",
        ),
        (
            "UPDATE gov.activations SET parameter_set = (SELECT parameter_set FROM gov.activations WHERE seq = 1) "
            "WHERE seq = 2",
            "gov.activations row 2 differs from audit entry 5: parameter_set",
        ),
        (
            "UPDATE gov.parameter_sets SET document = replace(document::VARCHAR, '\"haircut\":0.08', '\"haircut\":0.01') "
            "WHERE origin <> 'genesis'",
            "content altered",
        ),
        ("UPDATE gov.proposals SET status = 'submitted'", "the audit log says 'enacted'"),
    ],
    ids=["truncate-tail", "swap-activation", "edit-parameter-set", "edit-status"],
)
def test_state_edited_behind_the_log_is_detected(registry, sql, needle) -> None:
    _passed(registry, now=T0)
    _tamper(registry, sql)
    report = registry.verify()
    assert not report.ok
    assert any(needle in p for p in report.problems), report.problems


def test_a_tampered_set_is_never_served_and_blocks_enacting(registry) -> None:
    enacted = _passed(registry, now=T0)
    fingerprint = enacted.proposal.proposed_fingerprint
    _tamper(
        registry,
        "UPDATE gov.parameter_sets SET document = replace(document::VARCHAR, '\"haircut\":0.08', "
        f"'\"haircut\":0.01') WHERE fingerprint = '{fingerprint}'",
    )
    with pytest.raises(TamperedError, match="altered in the database"):
        registry.parameter_set(fingerprint)


def test_enacting_on_a_broken_log_is_refused(registry) -> None:
    state = registry.submit(_doc(), actor="risk", now=T0)
    _approve(registry, state.id, "alice", "bob")
    _tamper(registry, "UPDATE gov.audit_log SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(Refusal, match="the audit log does not verify"):
        registry.enact(state.id, actor="ops", now=T0)
    assert registry.head().parameter_set == GENESIS.fingerprint
    assert json.loads(
        registry.con.execute(
            "SELECT details FROM gov.audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()[0]
    )["reason"].startswith("audit log does not verify")
