"""The gate's optional bad-debt rule: what counts as worse, that it blocks only when given,
and that a policy leaving it off keeps the fingerprint it had before the rule existed."""

from __future__ import annotations

import pytest

from governance.gate import BAD_DEBT_TOLERANCE_USD, bad_debt_worse, enactment_gate
from governance.policy import DEFAULT_POLICY_DOCUMENT, Policy, PolicyError, parse_policy

WINDOWS = [
    {"window": "May 2022", "asset": "ETH", "bad_debt_usd": [100.0, 100.0 + BAD_DEBT_TOLERANCE_USD]},
    {"window": "FTX", "asset": "BTC", "bad_debt_usd": [0.0, 5_000.0]},
    {"window": "FTX", "asset": "ETH", "bad_debt_usd": [9_000.0, 1_000.0]},
]
RISK = [
    {"asset": "ETH", "var_99": [2_000.0, 2_500.0]},
    {"asset": "BTC", "var_99": [800.0, 700.0]},
]


def test_worse_is_more_bad_debt_beyond_the_tolerance() -> None:
    worse = bad_debt_worse({"rows": WINDOWS, "risk": RISK})
    # equal within the tolerance and less are not worse; more in a window or in the VaR is
    assert worse == (
        "FTX BTC: bad debt 0 → 5,000 USD",
        "ETH paths: bad-debt VaR 99 % 2,000 → 2,500 USD",
    )
    assert bad_debt_worse({}) == ()


def test_the_gate_blocks_on_more_bad_debt_only_when_given() -> None:
    assert enactment_gate([]).passed
    gate = enactment_gate([], bad_debt_worse({"rows": WINDOWS}))
    assert not gate.passed
    assert gate.bad_debt_worse == ("FTX BTC: bad debt 0 → 5,000 USD",)
    assert "bad debt not to get worse" in gate.reasons[0]


def test_a_policy_without_the_rule_keeps_its_fingerprint() -> None:
    policy = Policy.model_validate(DEFAULT_POLICY_DOCUMENT)
    # the default policy's fingerprint as it was before the gate's rules (and wallet members,
    # and Safe committees) existed: measured on the commit before them
    old = "373457d4d25e5f4cacafb8e7528835743b5dd4120ec04163981500f1aef42b4d"
    assert policy.fingerprint == old
    ruled = Policy.model_validate({**DEFAULT_POLICY_DOCUMENT, "gate": {"bad_debt_not_worse": True}})
    assert ruled.gate.bad_debt_not_worse and ruled.fingerprint != old
    off = Policy.model_validate({**DEFAULT_POLICY_DOCUMENT, "gate": {"bad_debt_not_worse": False}})
    assert off.fingerprint == old  # spelled out at its default: the same policy


def test_the_rule_is_validated_like_the_rest_of_the_policy() -> None:
    with pytest.raises(PolicyError, match="bad_debt"):
        parse_policy({**DEFAULT_POLICY_DOCUMENT, "gate": {"bad_debt_not_wrose": True}})
