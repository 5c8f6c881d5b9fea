"""One vocabulary: each word defined once, ordered where it has an order, and the model
registry behind both margin dispatches complete."""

from __future__ import annotations

import json

import pytest

from margin_engine.models import MODELS, margin, model_named, parameters_read
from vocabulary import BOOK_MODELS, SIMULATED_MODELS, VENUE_MODELS, MarginModel, Zone


def test_zones_are_ordered_and_not_testable_is_never_worse() -> None:
    assert [z.rank for z in (Zone.GREEN, Zone.YELLOW, Zone.RED)] == [0, 1, 2]
    assert Zone.worst("green", "red", "yellow") is Zone.RED
    assert Zone.worst("not testable", "green") is Zone.GREEN
    assert Zone.NOT_TESTABLE.rank < Zone.GREEN.rank


def test_words_serialise_as_the_stored_strings() -> None:
    assert json.dumps({"zone": Zone.RED, "model": MarginModel.DERIBIT_PM}) == (
        '{"zone": "red", "model": "deribit-pm"}'
    )
    assert Zone("not testable") is Zone.NOT_TESTABLE and MarginModel("es") is MarginModel.ES


def test_every_model_has_one_registry_entry() -> None:
    assert set(MODELS) == set(MarginModel)
    # the Monte Carlo models margin books in `mwb margin`; backtests do not replay them yet
    assert set(BOOK_MODELS) == set(MarginModel) - {
        MarginModel.HAIRCUT,
        *SIMULATED_MODELS,
        *VENUE_MODELS,
    }
    assert [m for m in MarginModel if m.simulated] == [MarginModel.MC_VAR, MarginModel.MC_ES]
    assert [m for m in MarginModel if m.needs_history] == [MarginModel.VAR, MarginModel.ES]
    with pytest.raises(ValueError, match="unknown model 'haircut'"):
        model_named("haircut")  # margins collateral, not books
    with pytest.raises(ValueError, match="choose from standard, span, deribit-pm, var, es"):
        model_named("spam")


def test_the_registry_dispatches_to_the_models_functions() -> None:
    """Both dispatches (mwb margin and the replay) go through ``margin``: it must be the model
    function itself, number for number."""
    import pandas as pd

    from margin_engine.book import build_positions
    from margin_engine.market import MarketSnapshot
    from margin_engine.params import ModelParams
    from margin_engine.portfolio_margin import portfolio_margin
    from margin_engine.span import span_margin
    from margin_engine.standard import standard_margin

    market = MarketSnapshot.from_json(
        {
            "as_of": "2026-11-20T00:00:00Z",
            "index": {"BTC": 90000.0},
            "default_iv": {"BTC": 0.55},
        }
    )
    positions = build_positions(
        pd.DataFrame(
            {
                "account": ["a", "a", "b"],
                "instrument": ["BTC-PERPETUAL", "BTC-25DEC26-100000-C", "BTC_USDC"],
                "quantity": ["50000", "-2", "1.5"],
            }
        ),
        market,
    )
    params = ModelParams()
    for model, direct in (
        ("standard", standard_margin),
        ("span", span_margin),
        ("deribit-pm", portfolio_margin),
    ):
        via = margin(positions, model, params).frame()
        pd.testing.assert_frame_equal(via, direct(positions, params).frame())
    with pytest.raises(ValueError, match="needs scenarios"):
        margin(positions, "var", params)


def test_a_models_cache_key_reads_only_its_parameters() -> None:
    from governance.parameters import default_parameter_set

    base = default_parameter_set()
    changed = base.with_changes({"collateral.ETH.haircut": 0.2})
    for model in BOOK_MODELS:
        before = parameters_read(model, base.canonical_dict(), ["BTC"])
        after = parameters_read(model, changed.canonical_dict(), ["BTC"])
        assert before == after, model  # an ETH haircut moves no BTC book margin
    assert parameters_read("haircut", base.canonical_dict(), ["ETH"]) != parameters_read(
        "haircut", changed.canonical_dict(), ["ETH"]
    )
