"""Property tests (hypothesis) of the margin models on random books of real instruments."""

from __future__ import annotations

import numpy as np
from books import positions_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from margin_engine import portfolio_margin as pm
from margin_engine import span
from margin_engine.book import build_positions
from margin_engine.params import ModelParams
from margin_engine.standard import standard_margin

MODELS = [pm.portfolio_margin, span.span_margin, standard_margin]
FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def books(draw, names):
    n = draw(st.integers(1, 8))
    picks = draw(st.lists(st.sampled_from(names), min_size=n, max_size=n))
    sizes = draw(
        st.lists(
            st.floats(-5, 5, allow_nan=False).filter(lambda x: abs(x) > 1e-3),
            min_size=n,
            max_size=n,
        )
    )
    return [
        ("x", name, size * (20_000 if "PERPETUAL" in name or name.count("-") == 1 else 1))
        for name, size in zip(picks, sizes, strict=True)
    ]


def scenario_pnl(module, positions):
    arrays = module.risk_arrays(positions, ModelParams())
    rows = positions.account * 0
    return np.asarray(positions.matrix(rows, 1) @ arrays)[0]


@FAST
@given(data=st.data())
def test_margin_is_non_negative_and_zero_for_an_empty_account(
    chain_market, chain_instruments, data
) -> None:
    book = data.draw(books(chain_instruments))
    empty = [("empty", name, 0.0) for _, name, _ in book[:2]]
    positions = build_positions(positions_frame(book + empty), chain_market)
    for model in MODELS:
        result = model(positions).frame()
        assert (result["initial_margin"] >= 0).all() and (result["maintenance_margin"] >= 0).all()
        assert (result.loc[result["account"] == "empty", "initial_margin"] == 0).all()


@FAST
@given(data=st.data(), k=st.floats(0.1, 10))
def test_scaling_positions_scales_scenario_pnl(chain_market, chain_instruments, data, k) -> None:
    book = data.draw(books(chain_instruments))
    base = build_positions(positions_frame(book), chain_market)
    scaled = build_positions(positions_frame([(a, n, q * k) for a, n, q in book]), chain_market)
    for module in (pm, span):
        np.testing.assert_allclose(
            scenario_pnl(module, scaled), k * scenario_pnl(module, base), rtol=1e-9, atol=1e-12
        )


@FAST
@given(data=st.data())
def test_a_position_and_its_offset_have_no_scan_risk(chain_market, chain_instruments, data) -> None:
    book = data.draw(books(chain_instruments))
    hedged = book + [(a, n, -q) for a, n, q in book]
    positions = build_positions(positions_frame(hedged), chain_market)
    for module in (pm, span):
        assert np.abs(scenario_pnl(module, positions)).max() < 1e-9
    assert pm.portfolio_margin(positions).frame()["worst_case"].max() < 1e-9


def group_scan_risk(module, frame, market, columns) -> dict:
    """Worst loss per (currency, underlying) group over the scenario ``columns``."""
    positions = build_positions(frame, market)
    groups = positions.book.table.groups
    arrays = module.risk_arrays(positions, ModelParams())[:, columns]
    rows = positions.book.table.group[positions.instrument]
    by_group = positions.matrix(rows, len(groups)) @ arrays
    return {g: max(0.0, -by_group[i].min()) for i, g in enumerate(groups)}


@FAST
@given(data=st.data())
def test_scan_risk_of_a_portfolio_is_at_most_the_sum_of_its_parts(
    chain_market, chain_instruments, data
) -> None:
    """Worst loss over a fixed scenario grid is subadditive. (PM's extended dampener is a fixed
    allowance per portfolio, so the check uses its standard table — the scan — only.)"""
    a = data.draw(books(chain_instruments))
    b = data.draw(books(chain_instruments))
    together = [("x", n, q) for _, n, q in a + b]
    for module, columns in ((pm, slice(0, pm.N_STANDARD)), (span, slice(0, span.N_SCENARIOS))):
        part_a, part_b, whole = (
            group_scan_risk(module, positions_frame(x), chain_market, columns)
            for x in (a, b, together)
        )
        for group, risk in whole.items():
            assert risk <= part_a.get(group, 0.0) + part_b.get(group, 0.0) + 1e-9
