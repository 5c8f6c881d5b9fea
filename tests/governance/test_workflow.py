"""Policy bounds, signatures and the proposal workflow as pure functions (issue 5 §2-4)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import T0, make_policy, member_key

from governance.parameters import default_parameter_set
from governance.policy import PolicyError, check_change, parse_policy
from governance.proposals import ProposalError, load_proposal, parse_proposal
from governance.signing import public_key_b64, sign, verify
from governance.workflow import (
    ProposalState,
    Refusal,
    Status,
    Vote,
    enact,
    prepare,
    submit,
    vote,
    vote_problems,
)

ACTIVE = default_parameter_set()


def _document(**changes):
    return parse_proposal({"title": "t", "author": "a", "motivation": "m", "changes": changes})


def _submitted(policy, **changes) -> ProposalState:
    proposal = prepare(_document(**changes), ACTIVE, policy, actor="a", now=T0)
    state, event = submit(proposal, ACTIVE, policy, actor="a", now=T0)
    assert event.action == "submitted" and event.details["fingerprint"] == proposal.fingerprint
    return state


def _approve(state, policy, *names):
    for name in names:
        state, _ = vote(
            state,
            policy,
            member=name,
            decision="approve",
            signature=sign(member_key(name), "approve", state.proposal.fingerprint),
            now=T0,
        )
    return state


# --------------------------------------------------------------------------- policy


@pytest.mark.parametrize(
    ("path", "old", "new", "needle"),
    [
        (
            "collateral.ETH.haircut",
            0.10,
            0.60,
            "collateral.ETH.haircut = 0.6 is above the maximum 0.5",
        ),
        (
            "underlyings.BTC.pm.price_range",
            0.16,
            0.04,
            "underlyings.BTC.pm.price_range = 0.04 is below the minimum 0.05",
        ),
        # relative: 25 % of 0.16 is 0.04, so 0.21 (+0.05) is too far, 0.20 is not
        (
            "underlyings.BTC.pm.price_range",
            0.16,
            0.21,
            "0.16 -> 0.21 changes by more than the allowed 25% of 0.16",
        ),
        # absolute: 0.05 per proposal
        (
            "collateral.SOL.haircut",
            0.15,
            0.09,
            "0.15 -> 0.09 changes by more than the allowed 0.05",
        ),
    ],
)
def test_a_change_outside_its_bound_names_parameter_value_and_bound(
    policy, path, old, new, needle
) -> None:
    violation = check_change(policy, path, old, new)
    assert violation is not None
    assert needle in violation.message
    assert violation.path == path and violation.value == new


def test_changes_at_the_edge_of_a_bound_pass(policy) -> None:
    assert check_change(policy, "underlyings.BTC.pm.price_range", 0.16, 0.20) is None
    assert check_change(policy, "underlyings.BTC.pm.price_range", 0.16, 0.12) is None
    assert check_change(policy, "collateral.SOL.haircut", 0.15, 0.10) is None
    assert check_change(policy, "var.mpor_days", 2, 10) is None  # no bound: the schema is the limit


def test_the_most_specific_bound_wins() -> None:
    policy = make_policy(
        bounds={
            "collateral.*.haircut": {"max": 0.5},
            "collateral.USDC.haircut": {"max": 0.02},
        }
    )
    assert check_change(policy, "collateral.USDC.haircut", 0.0, 0.03) is not None
    assert check_change(policy, "collateral.ETH.haircut", 0.1, 0.3) is None


def test_policy_validation_names_the_field() -> None:
    key = public_key_b64(member_key("alice"))
    with pytest.raises(PolicyError, match="quorum 3 exceeds the committee's 1 members"):
        parse_policy({"committee": [{"name": "alice", "public_key": key}], "quorum": 3})
    with pytest.raises(PolicyError, match=r"committee\.0\.public_key"):
        parse_policy({"committee": [{"name": "alice", "public_key": "bm90IGEga2V5"}]})
    with pytest.raises(PolicyError, match=r"bounds\.x\.max_change"):
        parse_policy({"bounds": {"x": {"max_change": -1}}})


# --------------------------------------------------------------------------- proposals


def test_proposal_files_are_validated_with_the_field_named(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("title: t\nauthor: a\nchanges: {collateral.ETH.haircut: 0.08}\n")
    with pytest.raises(ProposalError, match=rf"{path.name}: motivation"):
        load_proposal(path)
    path.write_text("title: t\nauthor: a\nmotivation: m\nkind: rollback\nchanges: {a: 1}\n")
    with pytest.raises(ProposalError, match="rollback proposal needs rollback_to"):
        load_proposal(path)
    path.write_text(
        "title: t\nauthor: a\nmotivation: m\nchanges: {collateral.ETH.haircut: 0.08}\n"
        "evidence: {backtest_windows: [{name: w, start: 2022-02-01, end: 2022-01-01}]}\n"
    )
    with pytest.raises(ProposalError, match="end 2022-01-01 is before start 2022-02-01"):
        load_proposal(path)


def test_prepare_refuses_out_of_bound_and_unknown_changes(policy) -> None:
    with pytest.raises(Refusal) as caught:
        prepare(_document(**{"collateral.ETH.haircut": 0.2}), ACTIVE, policy, actor="a", now=T0)
    assert "collateral.ETH.haircut: 0.1 -> 0.2 changes by more than the allowed 0.05" in str(
        caught.value
    )
    event = caught.value.event
    assert event.action == "proposal_refused"
    assert event.details["violations"][0]["path"] == "collateral.ETH.haircut"
    with pytest.raises(Refusal, match=r"collateral\.ETH\.hair_cut: no such parameter"):
        prepare(_document(**{"collateral.ETH.hair_cut": 0.08}), ACTIVE, policy, actor="a", now=T0)
    with pytest.raises(Refusal, match="changes nothing"):
        prepare(_document(**{"collateral.ETH.haircut": 0.1}), ACTIVE, policy, actor="a", now=T0)


def test_the_fingerprint_binds_document_and_base_set(policy) -> None:
    a = prepare(_document(**{"collateral.ETH.haircut": 0.08}), ACTIVE, policy, actor="a", now=T0)
    b = prepare(
        _document(**{"collateral.ETH.haircut": 0.08}), ACTIVE, policy, actor="someone else", now=T0
    )
    assert a.fingerprint == b.fingerprint and a.id == "P-" + a.fingerprint[:12]
    moved = ACTIVE.with_changes({"collateral.BTC.haircut": 0.07})
    c = prepare(_document(**{"collateral.ETH.haircut": 0.08}), moved, policy, actor="a", now=T0)
    assert c.fingerprint != a.fingerprint  # same words, different transition


# --------------------------------------------------------------------------- signatures and votes


def test_a_signature_is_bound_to_decision_and_fingerprint() -> None:
    key = member_key("alice")
    public = public_key_b64(key)
    signature = sign(key, "approve", "ab" * 32)
    assert verify(public, signature, "approve", "ab" * 32)
    assert not verify(public, signature, "reject", "ab" * 32)
    assert not verify(public, signature, "approve", "cd" * 32)
    assert not verify(public_key_b64(member_key("bob")), signature, "approve", "ab" * 32)
    assert not verify(public, "not base64!", "approve", "ab" * 32)


def test_votes_reach_the_quorum(policy) -> None:
    state = _submitted(policy, **{"collateral.ETH.haircut": 0.08})
    state = _approve(state, policy, "alice")
    assert state.status is Status.SUBMITTED
    state = _approve(state, policy, "carol")
    assert state.status is Status.APPROVED


def test_rejections_that_make_the_quorum_unreachable_reject(policy) -> None:
    state = _submitted(policy, **{"collateral.ETH.haircut": 0.08})
    fp = state.proposal.fingerprint
    state, _ = vote(
        state,
        policy,
        member="bob",
        decision="reject",
        signature=sign(member_key("bob"), "reject", fp),
        now=T0,
        reason="too early",
    )
    assert state.status is Status.SUBMITTED  # alice and carol could still approve
    state, event = vote(
        state,
        policy,
        member="carol",
        decision="reject",
        signature=sign(member_key("carol"), "reject", fp),
        now=T0,
        reason="agree with bob",
    )
    assert state.status is Status.REJECTED and event.details["status"] == "rejected"
    with pytest.raises(Refusal, match="votes are closed"):
        _approve(state, policy, "alice")


@pytest.mark.parametrize(
    ("member", "signer", "decision", "over_other", "needle"),
    [
        ("mallory", "mallory", "approve", False, "'mallory' is not a member of the committee"),
        ("alice", "bob", "approve", False, "the signature is not alice's approve"),
        ("alice", "alice", "approve", True, "the signature is not alice's approve"),
        ("alice", "alice", "reject", False, "a rejection needs a reason"),
    ],
)
def test_bad_votes_are_refused_with_an_audit_event(
    policy, member, signer, decision, over_other, needle
) -> None:
    state = _submitted(policy, **{"collateral.ETH.haircut": 0.08})
    other = _submitted(policy, **{"collateral.ETH.haircut": 0.09})
    fingerprint = (other if over_other else state).proposal.fingerprint
    with pytest.raises(Refusal) as caught:
        vote(
            state,
            policy,
            member=member,
            decision=decision,
            signature=sign(member_key(signer), decision, fingerprint),
            now=T0,
        )
    assert needle in str(caught.value)
    assert caught.value.event.action == f"{decision}_refused"
    assert caught.value.event.subject == state.id


def test_a_member_votes_once(policy) -> None:
    state = _approve(_submitted(policy, **{"collateral.ETH.haircut": 0.08}), policy, "alice")
    with pytest.raises(Refusal, match="alice has already voted"):
        _approve(state, policy, "alice")


# --------------------------------------------------------------------------- enact


def _enact(state, policy, **kwargs):
    defaults = {
        "active_fingerprint": ACTIVE.fingerprint,
        "last_changed": {},
        "actor": "ops",
        "now": T0,
    }
    return enact(state, policy, **{**defaults, **kwargs})


def test_enact_needs_approval_and_then_activates(policy) -> None:
    state = _submitted(policy, **{"collateral.ETH.haircut": 0.08})
    with pytest.raises(Refusal, match="submitted, not approved"):
        _enact(state, policy)
    approved = _approve(state, policy, "alice", "bob")
    enacted, event = _enact(approved, policy, effective_from=T0 + timedelta(days=1))
    assert enacted.status is Status.ENACTED
    assert event.details["parameter_set"] == approved.proposal.proposed_fingerprint
    assert event.details["approvals"] == ["alice", "bob"]
    assert enacted.effective_from == T0 + timedelta(days=1)


def _forged(state, policy, *votes: Vote) -> ProposalState:
    """An approved state whose votes were edited behind the workflow's back."""
    return replace(state, votes=(*state.votes, *votes), status=Status.APPROVED)


@pytest.mark.parametrize(
    "forgery", ["non-member", "other proposal", "same member twice", "copied signature"]
)
def test_enact_refuses_forged_votes(policy, forgery) -> None:
    state = _approve(_submitted(policy, **{"collateral.ETH.haircut": 0.08}), policy, "alice", "bob")
    other = _submitted(policy, **{"collateral.ETH.haircut": 0.09})
    fp = state.proposal.fingerprint
    alice_vote = state.votes[0]
    forged = {
        "non-member": Vote("mallory", "approve", sign(member_key("mallory"), "approve", fp), T0),
        "other proposal": Vote(
            "carol", "approve", sign(member_key("carol"), "approve", other.proposal.fingerprint), T0
        ),
        "same member twice": alice_vote,
        "copied signature": Vote("carol", "approve", alice_vote.signature, T0),
    }[forgery]
    tampered = _forged(state, policy, forged)
    assert vote_problems(tampered, policy)
    with pytest.raises(Refusal) as caught:
        _enact(tampered, policy)
    assert caught.value.event.action == "enact_refused"
    # the untampered state enacts: the forgery alone caused the refusal
    assert _enact(state, policy)[0].status is Status.ENACTED


def test_enact_refuses_below_quorum_even_if_marked_approved(policy) -> None:
    state = _approve(_submitted(policy, **{"collateral.ETH.haircut": 0.08}), policy, "alice")
    with pytest.raises(Refusal, match="1 valid approval"):
        _enact(replace(state, status=Status.APPROVED), policy)


def test_enact_refuses_a_stale_base_a_changed_policy_and_the_past(policy) -> None:
    state = _approve(_submitted(policy, **{"collateral.ETH.haircut": 0.08}), policy, "alice", "bob")
    with pytest.raises(Refusal, match="re-propose against the active set"):
        _enact(state, policy, active_fingerprint="0" * 64)
    stricter = make_policy(quorum=3)
    with pytest.raises(Refusal, match="is in force now; re-propose"):
        _enact(state, stricter)
    with pytest.raises(Refusal, match="is in the past"):
        _enact(state, policy, effective_from=T0 - timedelta(days=1))
    with pytest.raises(Refusal, match="activations stay in time order"):
        _enact(
            state, policy, effective_from=T0 + timedelta(hours=1), not_before=T0 + timedelta(days=2)
        )


def test_cool_down_between_changes_of_one_parameter(policy) -> None:
    state = _approve(_submitted(policy, **{"collateral.ETH.haircut": 0.08}), policy, "alice", "bob")
    last = {"collateral.ETH.haircut": T0 - timedelta(days=3)}
    with pytest.raises(Refusal, match=r"7-day cool-down ends in 4 day\(s\)"):
        _enact(state, policy, last_changed=last)
    # other parameters' history does not matter, and after the cool-down it passes
    assert (
        _enact(state, policy, last_changed={"collateral.BTC.haircut": T0})[0].status
        is Status.ENACTED
    )
    assert (
        _enact(state, policy, last_changed=last, effective_from=T0 + timedelta(days=4))[0].status
        is Status.ENACTED
    )


def test_policy_proposals_need_a_reachable_quorum(policy) -> None:
    document = parse_proposal(
        {
            "title": "t",
            "author": "a",
            "motivation": "m",
            "kind": "policy",
            "policy": {**make_policy().model_dump(mode="json"), "quorum": 3},
        }
    )
    proposal = prepare(document, ACTIVE, policy, actor="a", now=T0)
    assert proposal.proposed_policy.quorum == 3
    assert proposal.proposed_fingerprint == ACTIVE.fingerprint
    state, event = submit(proposal, ACTIVE, policy, actor="a", now=T0)
    assert [c.path for c in state.changes] == ["quorum"]
    bad = parse_proposal(
        {
            "title": "t",
            "author": "a",
            "motivation": "m",
            "kind": "policy",
            "policy": {"committee": [], "quorum": 2},
        }
    )
    with pytest.raises(Refusal, match="exceeds the committee's 0 members"):
        prepare(bad, ACTIVE, policy, actor="a", now=T0)
