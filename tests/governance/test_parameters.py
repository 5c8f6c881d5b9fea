"""Parameter sets: published defaults, path-naming validation, fingerprints, diffs (issue 5 §1)."""

from __future__ import annotations

import copy
import hashlib
import json
import random

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.parameters import (
    ABSENT,
    DEFAULT_DOCUMENT,
    ParameterSet,
    ParameterSetError,
    apply_diff,
    default_parameter_set,
    diff,
    load_parameter_set,
    parse_parameter_set,
)


def test_default_set_carries_deribits_published_pm_values() -> None:
    """btc_usd price range 16 %, vol range up 50 % / down 25 %; eth_usd 18 %, 40 %."""
    s = default_parameter_set()
    assert s.get("underlyings.BTC.pm.price_range") == 0.16
    assert s.get("underlyings.BTC.pm.vol_range_up") == 0.50
    assert s.get("underlyings.BTC.pm.vol_range_down") == 0.25
    assert s.get("underlyings.ETH.pm.price_range") == 0.18
    assert s.get("underlyings.ETH.pm.vol_range_up") == 0.40
    params = s.to_model_params()
    assert params.pm["ETH"].price_range == 0.18
    # the haircut of a tier is the asset's haircut plus the tier's add-on
    assert [t.haircut for t in params.collateral["ETH"].tiers] == pytest.approx([0.10, 0.12, 0.15])
    assert params.spreads[("BTC", "ETH")] == 0.50


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("underlyings.ETH.pm.price_range", -0.1, "underlyings.ETH.pm.price_range"),
        ("collateral.SOL.haircut", 1.5, "collateral.SOL.haircut"),
        ("var.mpor_days", 0, "var.mpor_days"),
        ("underlyings.BTC.pm.vol_range_up", "wide", "underlyings.BTC.pm.vol_range_up"),
    ],
)
def test_validation_names_the_path(path: str, value, expected: str) -> None:
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    node = document
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(ParameterSetError) as caught:
        parse_parameter_set(document)
    assert str(caught.value).startswith(expected)


def test_unknown_keys_and_bad_spreads_are_refused_with_their_path() -> None:
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    document["underlyings"]["BTC"]["pm"]["price_rnage"] = 0.2
    with pytest.raises(ParameterSetError, match=r"underlyings\.BTC\.pm\.price_rnage"):
        parse_parameter_set(document)
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    document["spreads"]["BTC-DOGE"] = {"credit": 0.1}
    with pytest.raises(ParameterSetError, match="spreads.BTC-DOGE"):
        parse_parameter_set(document)


def test_load_names_the_file(tmp_path) -> None:
    path = tmp_path / "set.yaml"
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    document["collateral"]["ETH"]["haircut"] = -0.01
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ParameterSetError, match=rf"{path.name}: collateral\.ETH\.haircut"):
        load_parameter_set(path)


def test_fingerprint_is_sha256_of_canonical_json_and_ignores_number_spelling(tmp_path) -> None:
    s = default_parameter_set()
    assert s.fingerprint == hashlib.sha256(s.canonical_json().encode()).hexdigest()
    text = yaml.safe_dump(DEFAULT_DOCUMENT, sort_keys=False)
    respelled = text.replace("price_range: 0.16", "price_range: 1.6e-1").replace(
        "mm_factor: 0.8", "mm_factor: 0.80"
    )
    assert respelled != text
    (tmp_path / "a.yaml").write_text(respelled)
    assert load_parameter_set(tmp_path / "a.yaml").fingerprint == s.fingerprint
    # an integer written for a float parameter is the same number
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    document["underlyings"]["BTC"]["span"]["extreme_move_multiple"] = 2
    assert parse_parameter_set(document).fingerprint == s.fingerprint
    # and a different value is a different set
    assert s.with_changes({"collateral.ETH.haircut": 0.0999}).fingerprint != s.fingerprint


def test_diff_is_readable_and_lists_added_and_removed_leaves() -> None:
    a = default_parameter_set()
    b = a.with_changes({"collateral.ETH.haircut": 0.08, "underlyings.BTC.pm.price_range": 0.14})
    assert [c.describe() for c in diff(a, b)] == [
        "collateral.ETH.haircut: 0.1 -> 0.08",
        "underlyings.BTC.pm.price_range: 0.16 -> 0.14",
    ]
    document = a.canonical_dict()
    del document["spreads"]["ETH-SOL"]
    c = parse_parameter_set(document)
    (change,) = diff(a, c)
    assert change.path == "spreads.ETH-SOL.credit" and change.new is ABSENT
    assert apply_diff(diff(a, c), a) == c


# --------------------------------------------------------------------------- properties

_PATHS = sorted(
    p
    for p, v in default_parameter_set().paths().items()
    if isinstance(v, float) and "up_to_usd" not in p
)


def _shuffled(node, rng: random.Random):
    if isinstance(node, dict):
        items = list(node.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(node, list):
        return [_shuffled(v, rng) for v in node]
    return node


@st.composite
def parameter_sets(draw) -> ParameterSet:
    """Valid sets: the default with some leaves scaled within their validated ranges."""
    base = default_parameter_set()
    chosen = draw(st.lists(st.sampled_from(_PATHS), unique=True, max_size=6))
    changes = {}
    for path in chosen:
        value = base.get(path)
        factor = draw(st.floats(0.5, 1.0, allow_nan=False))
        changes[path] = value * factor
    try:
        document = base.with_changes(changes).canonical_dict()
    except ParameterSetError:  # e.g. maintenance pushed above initial: not a valid set
        document = base.canonical_dict()
    # structural edits, so that diffs also add and remove whole sections and list items
    for spread in draw(st.lists(st.sampled_from(sorted(document["spreads"])), unique=True)):
        del document["spreads"][spread]
    if draw(st.booleans()):
        caps = sorted(draw(st.lists(st.floats(1e5, 1e9), min_size=0, max_size=3, unique=True)))
        tiers = [{"up_to_usd": c, "add_on": 0.01 * i} for i, c in enumerate(caps)]
        document["collateral"]["AVAX"] = {
            "haircut": draw(st.floats(0, 0.5)),
            "tiers": [*tiers, {"up_to_usd": None, "add_on": 0.05}],
        }
    if draw(st.booleans()):
        document["collateral"]["ETH"]["tiers"] = document["collateral"]["ETH"]["tiers"][-1:]
    return parse_parameter_set(document)


@settings(max_examples=60, deadline=None)
@given(parameter_sets(), st.integers(0, 2**32 - 1))
def test_fingerprint_is_invariant_to_key_order(s: ParameterSet, seed: int) -> None:
    shuffled = _shuffled(json.loads(s.canonical_json()), random.Random(seed))
    again = parse_parameter_set(shuffled)
    assert again.fingerprint == s.fingerprint
    assert again == s


@settings(max_examples=60, deadline=None)
@given(parameter_sets(), parameter_sets())
def test_fingerprints_are_equal_exactly_for_equal_content(a: ParameterSet, b: ParameterSet) -> None:
    assert (a.fingerprint == b.fingerprint) == (a.canonical_dict() == b.canonical_dict())


@settings(max_examples=60, deadline=None)
@given(parameter_sets(), parameter_sets())
def test_apply_of_diff_reproduces_the_target(a: ParameterSet, b: ParameterSet) -> None:
    assert apply_diff(diff(a, b), a) == b
    assert apply_diff(diff(a, b), a).fingerprint == b.fingerprint
    assert diff(a, a) == []
