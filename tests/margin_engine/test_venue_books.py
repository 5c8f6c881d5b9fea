"""Venue models over whole books: the compiled Derive pass against the scalar PMRM 2 (which
reproduces Derive's published cases) and the numpy reference; the delta-only baseline against
its closed form and against what it misses."""

from __future__ import annotations

import os

import numpy as np
import pytest
from books import positions_frame, random_book

from governance.parameters import default_parameter_set, venue_parameter_set
from margin_engine.book import build_positions
from margin_engine.models import margin, parameters_read
from margin_engine.params import ModelParams
from margin_engine.venues.books import (
    delta_only_margin,
    derive_margin,
    derive_margin_reference,
    derive_portfolios,
)
from margin_engine.venues.derive import PUBLISHED, pmrm2_margin


def _scalar(positions, params=PUBLISHED) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    for (a, _), portfolio in derive_portfolios(positions).items():
        r = pmrm2_margin(portfolio, params)
        out[a] = out.get(a, np.zeros(3)) + [r.initial_margin, r.maintenance_margin, r.equity]
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_book_pass_equals_the_scalar_model_on_random_books(
    chain_market, chain_instruments, seed
) -> None:
    positions = build_positions(random_book(chain_instruments, 40, seed), chain_market)
    result = derive_margin(positions, ModelParams())
    scalar = _scalar(positions)
    assert sorted(scalar) == result.account.tolist()
    for k, a in enumerate(result.account):
        im, mm, equity = scalar[a]
        assert result.initial_margin[k] == pytest.approx(im, rel=1e-9, abs=1e-9)
        assert result.maintenance_margin[k] == pytest.approx(mm, rel=1e-9, abs=1e-9)
        assert result.equity[k] == pytest.approx(equity, rel=1e-9, abs=1e-6)
    reference = derive_margin_reference(positions, ModelParams())
    np.testing.assert_allclose(result.initial_margin, reference.initial_margin, rtol=1e-12)
    np.testing.assert_allclose(result.maintenance_margin, reference.maintenance_margin, rtol=1e-12)


def test_numpy_switch_selects_the_reference(chain_market, chain_instruments, monkeypatch) -> None:
    positions = build_positions(random_book(chain_instruments, 10, 5), chain_market)
    monkeypatch.setenv("MWB_KERNEL", "numpy")
    assert os.environ["MWB_KERNEL"] == "numpy"
    via_switch = derive_margin(positions)
    np.testing.assert_array_equal(
        via_switch.initial_margin, derive_margin_reference(positions).initial_margin
    )


def test_call_and_put_at_one_strike_net_before_the_naked_short_charge(chain_market) -> None:
    """A short call and a long put at one strike leave no naked short (they net to zero
    units), a short call alone leaves one: the contingency differs by spot × percentages."""
    call, put = "BTC-29MAY26-70000-C", "BTC-29MAY26-70000-P"
    paired = build_positions(positions_frame([("a", call, -1.0), ("a", put, 1.0)]), chain_market)
    alone = build_positions(positions_frame([("a", call, -1.0)]), chain_market)
    c = PUBLISHED.contingency
    spot = chain_market.spot("BTC")
    paired_cont = derive_margin(paired).components["contingency"][0]
    alone_cont = derive_margin(alone).components["contingency"][0]
    assert paired_cont == pytest.approx(0.0, abs=1e-9)
    assert alone_cont == pytest.approx(
        spot * (c.mm_option_percent + c.im_option_percent), rel=1e-12
    )


def test_the_sets_derive_block_moves_the_margin(chain_market, chain_instruments) -> None:
    positions = build_positions(random_book(chain_instruments, 20, 9), chain_market)
    published = venue_parameter_set("derive")
    doubled = published.with_changes({"venues.derive.margin.im_factor": 2.0})
    base = margin(positions, "derive-pmrm2", published.to_model_params())
    more = margin(positions, "derive-pmrm2", doubled.to_model_params())
    worst = base.components["worst_case"]
    np.testing.assert_allclose(more.initial_margin, base.initial_margin + worst, rtol=1e-12)
    # without a block the published values apply, so the default set margins like 'derive'
    default = margin(positions, "derive-pmrm2", default_parameter_set().to_model_params())
    np.testing.assert_array_equal(default.initial_margin, base.initial_margin)
    read = parameters_read("derive-pmrm2", doubled.canonical_dict(), ["BTC"])
    assert read != parameters_read("derive-pmrm2", published.canonical_dict(), ["BTC"])


def test_sets_without_venues_keep_their_fingerprint() -> None:
    """The venues section is optional and absent from a set that has none, so every
    fingerprint recorded before it existed still names the same set."""
    default = default_parameter_set()
    assert "venues" not in default.canonical_dict()
    assert default.fingerprint == (
        "a204232d6876abf635bb1082cf0bd0790291ca65483e04fb57cf141380528273"
    )
    assert venue_parameter_set("derive").fingerprint != default.fingerprint


def test_delta_only_is_the_closed_form(chain_market) -> None:
    frame = positions_frame([("a", "ETH", 10.0), ("a", "BTC-PERPETUAL", -50_000.0)])
    positions = build_positions(frame, chain_market)
    result = delta_only_margin(positions, ModelParams())
    params = default_parameter_set().to_model_params()
    eth = 10.0 * chain_market.spot("ETH") * params.standard_for("ETH").future_initial
    # an inverse perpetual of 50,000 USD contracts is short 50,000 / F coin, at the index S
    perp = positions.book.table.names.index("BTC-PERPETUAL")
    basis = chain_market.spot("BTC") / positions.book.forward[perp]
    btc = 50_000.0 * basis * params.standard_for("BTC").future_initial
    assert result.initial_margin[0] == pytest.approx(eth + btc, rel=1e-12)


def test_delta_only_misses_what_a_short_straddle_risks(chain_market) -> None:
    """A short ATM straddle is near delta-neutral: the linear baseline charges almost
    nothing, while Derive's scenarios (and Deribit's PM) charge its gamma and vega."""
    frame = positions_frame(
        [("s", "BTC-29MAY26-66000-C", -10.0), ("s", "BTC-29MAY26-66000-P", -10.0)]
    )
    positions = build_positions(frame, chain_market)
    linear = delta_only_margin(positions).initial_margin[0]
    derive = derive_margin(positions).initial_margin[0]
    assert derive > 10 * linear


def test_an_account_on_every_expiry_then_one_more_option(chain_market, chain_instruments) -> None:
    """The pass records each option's expiry unconditionally (branch-free): an account that
    touches every expiry in the book and then holds one more option writes one slot past the
    expiries — the buffer has it — and a second account after it starts clean."""
    options = [n for n in chain_instruments if n.count("-") == 3]
    by_expiry: dict[tuple[str, ...], list[str]] = {}  # (underlying, expiry)
    for name in options:
        by_expiry.setdefault(tuple(name.split("-")[:2]), []).append(name)
    rows = [("a", names[0], -1.0) for names in by_expiry.values()]
    rows += [("a", next(iter(by_expiry.values()))[1], 2.0), ("b", options[0], 1.0)]
    positions = build_positions(positions_frame(rows), chain_market)
    assert not positions.errors and len(by_expiry) > 4
    result = derive_margin(positions)
    reference = derive_margin_reference(positions)
    np.testing.assert_allclose(result.initial_margin, reference.initial_margin, rtol=1e-12)
    np.testing.assert_allclose(result.maintenance_margin, reference.maintenance_margin, rtol=1e-12)
    alone = derive_margin(build_positions(positions_frame([("b", options[0], 1.0)]), chain_market))
    assert result.initial_margin[1] == pytest.approx(alone.initial_margin[0], rel=1e-12)
