"""Shadow runs in the registry: who may start one, each day audited and verified, and the
enactment gate's rule on them."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from conftest import T0, make_policy, member_key

from governance.parameters import default_parameter_set
from governance.proposals import parse_proposal
from governance.registry import GovernanceError, Registry
from governance.shadow import ShadowDay, shadow_verdict
from governance.signing import sign
from governance.workflow import Refusal
from pipelines.warehouse import connect

DAY0 = date(2026, 1, 10)


def _day(k: int, active=(), shadow=()) -> ShadowDay:
    return ShadowDay(DAY0 + timedelta(days=k), tuple(active), tuple(shadow), 100.0, 90.0)


def test_the_verdict() -> None:
    clean = [_day(k, active=("a/pm/USDC",), shadow=("a/pm/USDC",)) for k in range(5)]
    assert shadow_verdict(clean, 5)[0]
    assert not shadow_verdict(clean[:4], 5)[0]
    worse = [*clean, _day(5, shadow=("b/pm/BTC",))]
    ok, why = shadow_verdict(worse, 5)
    assert not ok and "b/pm/BTC" in why and str(DAY0 + timedelta(days=5)) in why
    assert shadow_verdict([], 0)[0]


@pytest.fixture
def gated(tmp_path):
    con = connect(tmp_path / "warehouse.duckdb")
    registry = Registry(con)
    policy = make_policy(gate={"shadow_days": 3})
    registry.initialise(default_parameter_set(), policy, actor="admin", now=T0)
    yield registry
    con.close()


def _approved(registry: Registry, value: float) -> str:
    document = parse_proposal(
        {
            "title": "ETH range",
            "author": "t",
            "motivation": "t",
            "changes": {"underlyings.ETH.pm.price_range": value},
        }
    )
    state = registry.submit(document, actor="t", now=T0 + timedelta(days=10))
    for name in ("alice", "bob"):
        registry.vote(
            state.id,
            member=name,
            decision="approve",
            signature=sign(member_key(name), "approve", state.proposal.fingerprint),
            now=T0 + timedelta(days=10),
        )
    return state.id


def test_shadow_days_are_audited_and_gate_enactment(gated) -> None:
    registry = gated
    proposal = _approved(registry, 0.16)
    now = T0 + timedelta(days=11)
    with pytest.raises(Refusal, match="0 shadow day"):
        registry.enact(proposal, actor="t", now=now)
    registry.start_shadow(proposal, actor="t", now=now, first_day=DAY0, days=3)
    with pytest.raises(Refusal, match="already in shadow"):
        registry.start_shadow(proposal, actor="t", now=now, first_day=DAY0)
    for k in range(3):
        registry.record_shadow_day(
            proposal, _day(k, shadow=("x/pm/ETH",) if k == 1 else ()), actor="t", now=now
        )
    with pytest.raises(GovernanceError, match="already recorded"):
        registry.record_shadow_day(proposal, _day(0), actor="t", now=now)
    assert registry.verify().ok
    actions = [e.action for e in registry.audit_entries()]
    assert actions.count("shadow_day") == 3 and "shadow_started" in actions
    with pytest.raises(Refusal, match="breached where the set in force did not"):
        registry.enact(proposal, actor="t", now=now)
    assert registry.audit_entries()[-1].action == "enact_refused"


def test_a_clean_shadow_lets_the_proposal_through(gated) -> None:
    registry = gated
    proposal = _approved(registry, 0.20)
    now = T0 + timedelta(days=11)
    registry.start_shadow(proposal, actor="t", now=now, first_day=DAY0, days=3)
    for k in range(3):
        registry.record_shadow_day(proposal, _day(k), actor="t", now=now)
    assert registry.enact(proposal, actor="t", now=now).status.value == "enacted"


def test_a_shadow_row_changed_in_the_database_fails_verification(gated) -> None:
    registry = gated
    proposal = _approved(registry, 0.16)
    now = T0 + timedelta(days=11)
    registry.start_shadow(proposal, actor="t", now=now, first_day=DAY0, days=3)
    registry.record_shadow_day(proposal, _day(0, shadow=("x/pm/ETH",)), actor="t", now=now)
    registry.store.con.execute(
        "UPDATE gov.shadow_days SET record = replace(record, 'x/pm/ETH', 'nothing')"
    )
    report = registry.verify()
    assert not report.ok and any("shadow day" in p for p in report.problems)


def test_only_submitted_or_approved_proposals_run_in_shadow(gated) -> None:
    registry = gated
    proposal = _approved(registry, 0.16)
    now = T0 + timedelta(days=11)
    registry.start_shadow(proposal, actor="t", now=now, first_day=DAY0, days=3)
    for k in range(3):
        registry.record_shadow_day(proposal, _day(k), actor="t", now=now)
    registry.enact(proposal, actor="t", now=now)
    with pytest.raises(Refusal, match="enacted"):
        registry.start_shadow(proposal, actor="t", now=now, first_day=DAY0)
    assert registry.audit_entries()[-1].action == "shadow_refused"


def test_snapshots_cut_the_days_where_they_come_into_force() -> None:
    from governance.shadow import AccountSnapshot, segments

    a = AccountSnapshot(DAY0, (("x", "BTC-PERPETUAL", 1.0),))
    b = AccountSnapshot(DAY0 + timedelta(days=5), (("y", "ETH-PERPETUAL", -2.0),))
    cut = segments([b, a], DAY0 - timedelta(days=3), DAY0 + timedelta(days=9))
    assert [(first, last, s.rows[0][0]) for first, last, s in cut] == [
        (DAY0, DAY0 + timedelta(days=4), "x"),
        (DAY0 + timedelta(days=5), DAY0 + timedelta(days=9), "y"),
    ]
    # a window inside one snapshot's days, and one before any snapshot
    assert [s for _, _, s in segments([a, b], DAY0 + timedelta(days=6), DAY0 + timedelta(7))] == [b]
    assert segments([a, b], DAY0 - timedelta(days=9), DAY0 - timedelta(days=1)) == []
    # the SHA-256 is over the rows; the day it comes into force is in the audited facts
    assert a.facts()["sha256"] == AccountSnapshot(DAY0 + timedelta(1), a.rows).sha256
    assert AccountSnapshot.from_canonical(a.from_day, a.canonical) == a
    with pytest.raises(ValueError, match="one per"):
        AccountSnapshot(DAY0, (("x", "B", 1.0), ("x", "B", 2.0)))
    with pytest.raises(ValueError, match="one per"):
        AccountSnapshot(DAY0, (("y", "B", 1.0), ("x", "B", 2.0)))
    with pytest.raises(ValueError, match="at least one"):
        AccountSnapshot(DAY0, ())
