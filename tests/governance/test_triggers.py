"""Rollback and drift triggers: when they fire, and that their drafts pass the policy (issue 5 §6)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from conftest import T0, make_policy
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.parameters import default_parameter_set
from governance.policy import RollbackRule
from governance.registry import Registry
from governance.triggers import Breach, breach_trigger, drift_trigger
from governance.workflow import Status, prepare

ACTIVE = default_parameter_set()
POLICY = make_policy()
NOW = T0 + timedelta(days=60)


def _breaches(*days_ago: int) -> list[Breach]:
    return [
        Breach(NOW.date() - timedelta(days=d), f"acct{d}", 120.0 + d, 100.0, "USD", "deribit-pm")
        for d in days_ago
    ]


def _fire(breaches, since=T0, previous="ab" * 32):
    return breach_trigger(
        breaches,
        RollbackRule(max_breaches=3, window_days=30),
        active_fingerprint="cd" * 32,
        active_since=since,
        previous_fingerprint=previous,
        now=NOW,
    )


def test_breaches_fire_only_when_more_than_n_in_the_window() -> None:
    assert not _fire(_breaches(1, 2, 3)).fired  # three is not more than three
    assert not _fire(_breaches(1, 2, 3, 31, 45)).fired  # two of them are older than the window
    finding = _fire(_breaches(0, 1, 2, 29))
    assert finding.fired
    document = finding.document
    assert document.kind == "rollback" and document.rollback_to == "ab" * 32
    assert len(document.evidence.attachments["breaches"]) == 4
    assert "acct29" in document.motivation  # the worst breach, by loss over margin, is named
    assert document.evidence.backtest_windows[0].end == NOW.date()


def test_breaches_before_the_active_set_took_effect_do_not_count() -> None:
    since = NOW - timedelta(days=2)
    assert not _fire(_breaches(0, 1, 5, 6, 7), since=since).fired
    assert _fire(_breaches(0, 1, 2, 2), since=since).fired


def test_no_rollback_draft_without_an_earlier_set() -> None:
    finding = _fire(_breaches(0, 1, 2, 3), previous=None)
    assert finding.fired and finding.document is None and "no earlier set" in finding.summary


def test_drift_beyond_tolerance_drafts_a_clipped_change() -> None:
    recommended = {
        "underlyings.BTC.pm.price_range": 0.13,  # 0.16 -> 0.13: 19 % > 15 %, within the 25 % step
        "underlyings.ETH.pm.price_range": 0.19,  # 6 % drift: quiet
        "collateral.SOL.haircut": 0.30,  # 100 % drift; steps at most 0.05 per proposal
        "spreads.BTC-ETH.credit": 0.10,  # no drift tolerance for spreads in the policy: ignored
    }
    finding = drift_trigger(
        recommended, ACTIVE, POLICY, calibration_id="c1", as_of=date(2026, 1, 5)
    )
    assert finding.fired
    assert finding.document.changes == {
        "underlyings.BTC.pm.price_range": 0.13,
        "collateral.SOL.haircut": 0.20,
    }
    (sol,) = [d for d in finding.evidence["drifted"] if d["path"] == "collateral.SOL.haircut"]
    assert sol["recommended"] == 0.30 and sol["notes"] == [
        "limited to the largest change per proposal (0.05 absolute)"
    ]
    assert "collateral.SOL.haircut: active 0.15, recommended 0.3" in finding.document.motivation
    # the draft is submittable as it stands
    prepare(finding.document, ACTIVE, POLICY, actor="t", now=T0)


def test_no_drift_no_draft() -> None:
    finding = drift_trigger(
        {"underlyings.BTC.pm.price_range": 0.17},
        ACTIVE,
        POLICY,
        calibration_id="c",
        as_of=date(2026, 1, 5),
    )
    assert not finding.fired and finding.document is None


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "underlyings.BTC.pm.price_range",
                "underlyings.ETH.pm.vol_range_up",
                "underlyings.SOL.pm.price_range",
                "collateral.ETH.haircut",
                "collateral.USDC.haircut",
            ]
        ),
        st.floats(0.0, 3.0, allow_nan=False),
        min_size=1,
    )
)
def test_every_drift_draft_passes_the_policy(recommended) -> None:
    """Clipping to bounds and steps, then rounding towards the active value, never breaks a bound."""
    finding = drift_trigger(recommended, ACTIVE, POLICY, calibration_id="c", as_of=date(2026, 1, 5))
    if finding.document is not None:
        proposal = prepare(finding.document, ACTIVE, POLICY, actor="t", now=T0)
        for path, value in finding.document.changes.items():
            old, target = ACTIVE.get(path), recommended[path]
            assert (
                min(old, target) - 1e-12 <= value <= max(old, target) + 1e-12
            )  # a step towards it
        assert proposal.proposed.fingerprint != ACTIVE.fingerprint


def test_pipeline_triggers_draft_from_the_latest_calibration(tmp_path, registry: Registry) -> None:
    """`run_triggers` reads calib.recommendations, records a draft and writes its YAML."""
    from governance.proposals import load_proposal
    from pipelines.governance import run_triggers
    from pipelines.settings import load_settings

    con = registry.con
    con.execute(
        "INSERT INTO calib.runs VALUES ('c-old', '2026-01-01', '{}', 'x', '0', '{}', ?)", [T0]
    )
    con.execute(
        "INSERT INTO calib.runs VALUES ('c-new', '2026-01-04', '{}', 'y', '0', '{}', ?)", [T0]
    )
    con.execute(
        "INSERT INTO calib.recommendations VALUES ('c-old', 'collateral.ETH.haircut', 0.5, 'fraction', '{}')"
    )
    con.execute(
        "INSERT INTO calib.recommendations VALUES ('c-new', 'collateral.ETH.haircut', 0.07, 'fraction', '{}')"
    )
    settings_ = load_settings(tmp_path / "home")
    now = T0 + timedelta(days=1)
    breaches_ = [
        Breach(now.date() - timedelta(days=d % 2), f"a{d}", 2.0, 1.0, "USD") for d in range(4)
    ]
    outcomes = run_triggers(con, settings_, now=now, breaches=breaches_)
    drift, breaches = outcomes
    assert drift.finding.fired and drift.draft is not None
    assert drift.finding.evidence["calibration_id"] == "c-new"
    # the YAML file is the same document: submitting it promotes this very draft
    assert load_proposal(drift.path) == drift.finding.document
    assert drift.finding.document.changes == {"collateral.ETH.haircut": 0.07}
    assert registry.proposals()[0].status is Status.DRAFT
    # genesis is active: breaches fire but there is nothing to roll back to
    assert breaches.finding.fired and breaches.draft is None
    # running again changes nothing: the same draft already exists
    before = len(registry.audit_entries())
    run_triggers(con, settings_, now=T0 + timedelta(days=1))
    assert len(registry.audit_entries()) == before
    assert registry.verify().ok


@pytest.mark.parametrize("value", [0.0799, 0.07])
def test_rounding_moves_towards_the_active_value(value) -> None:
    finding = drift_trigger(
        {"collateral.ETH.haircut": value - 1e-6},
        ACTIVE,
        POLICY,
        calibration_id="c",
        as_of=date(2026, 1, 5),
    )
    proposed = finding.document.changes["collateral.ETH.haircut"]
    assert proposed == pytest.approx(value, abs=1e-4) and proposed >= value - 1e-6
