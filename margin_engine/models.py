"""The registry of margin models: one entry per :class:`vocabulary.MarginModel` naming the
function that margins a book and the parameters it reads.

Both dispatches — margining accounts (``mwb margin``) and replaying books day by day in a
backtest — go through :func:`margin`, so a model added here is available to both. The
parameters a model reads (:func:`parameters_read`) decide which cached backtest margins a
parameter change invalidates: changing a haircut recomputes haircut rows only; changing the BTC
price range only the PM (and SPAN fallback) margins of BTC books.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from margin_engine.book import MarginResult, Positions
from margin_engine.params import ModelParams
from margin_engine.portfolio_margin import portfolio_margin
from margin_engine.span import span_margin
from margin_engine.standard import standard_margin
from margin_engine.var import JointScenarios, var_margin
from margin_engine.venues.aevo import aevo_margin
from margin_engine.venues.books import delta_only_margin, derive_margin, hyperliquid_margin
from margin_engine.venues.okx import okx_margin
from margin_engine.venues.paradex import paradex_margin
from vocabulary import BOOK_MODELS, VENUE_MODELS, MarginModel, VarMeasure

__all__ = ["MODELS", "ModelEntry", "margin", "parameters_read"]

Document = Mapping[str, Any]  # a parameter set's canonical document (governance.parameters)
Reads = Callable[[Document, Sequence[str]], dict]


def _blocks(doc: Document, underlyings: Sequence[str]) -> dict[str, dict]:
    return {u: doc["underlyings"].get(u) or {} for u in underlyings}


def _reads_standard(doc: Document, underlyings: Sequence[str]) -> dict:
    return {u: b.get("standard") for u, b in _blocks(doc, underlyings).items()}


def _reads_span(doc: Document, underlyings: Sequence[str]) -> dict:
    blocks = _blocks(doc, underlyings)
    spreads = {
        k: v for k, v in doc.get("spreads", {}).items() if any(u in k.split("-") for u in blocks)
    }
    return {
        "span": {u: b.get("span") for u, b in blocks.items()},
        "spreads": spreads,
        # SPAN falls back to the PM ranges only for an underlying without a span block
        "pm_fallback": {u: b.get("pm") for u, b in blocks.items() if not b.get("span")},
        "mm": doc["pm"],
    }


def _reads_pm(doc: Document, underlyings: Sequence[str]) -> dict:
    groups = {
        name: g
        for name, g in (doc.get("product_groups") or {}).items()
        if any(u in g["underlyings"] for u in underlyings)
    }
    return {
        "pm": {u: b.get("pm") for u, b in _blocks(doc, underlyings).items()},
        "currencies": doc["currencies"],
        "mm": doc["pm"],
        **({"product_groups": groups} if groups else {}),  # absent: keys as before
    }


def _reads_var(doc: Document, underlyings: Sequence[str]) -> dict:
    return {"var": doc["var"], "mm": doc["pm"]}


def _reads_derive(doc: Document, underlyings: Sequence[str]) -> dict:
    # a set without a derive block margins with Derive's published values
    return {"derive": (doc.get("venues") or {}).get("derive")}


def _reads_hyperliquid(doc: Document, underlyings: Sequence[str]) -> dict:
    tables = ((doc.get("venues") or {}).get("hyperliquid") or {}).get("tables") or {}
    return {u: tables.get(u) for u in underlyings}


def _reads_okx(doc: Document, underlyings: Sequence[str]) -> dict:
    okx = ((doc.get("venues") or {}).get("okx") or {}).get("underlyings") or {}
    # MR1's vol shifts are the PM vol shocks (see margin_engine.venues.okx)
    return {u: okx.get(u) for u in underlyings} | {"pm": _reads_pm(doc, underlyings)["pm"]}


def _reads_paradex(doc: Document, underlyings: Sequence[str]) -> dict:
    return {"paradex": (doc.get("venues") or {}).get("paradex")}


def _reads_aevo(doc: Document, underlyings: Sequence[str]) -> dict:
    return {"aevo": (doc.get("venues") or {}).get("aevo")}


def _reads_delta_only(doc: Document, underlyings: Sequence[str]) -> dict:
    return {
        u: {k: (b.get("standard") or {}).get(k) for k in ("future_initial", "future_maintenance")}
        for u, b in _blocks(doc, underlyings).items()
    }


def _reads_haircut(doc: Document, underlyings: Sequence[str]) -> dict:
    return {"collateral": {u: doc["collateral"].get(u) for u in underlyings}}


@dataclass(frozen=True)
class ModelEntry:
    """What the workbench knows of one margin model.

    Attributes
    ----------
    model : MarginModel
        The model's name.
    book : callable or None
        ``(positions, params) -> MarginResult`` for the models that need only today's market;
        None for VaR/ES (they need scenarios) and the haircut (it margins collateral).
    reads : callable
        ``(document, underlyings) -> dict``: the parts of a parameter set's canonical document
        the model reads for books on ``underlyings``.
    """

    model: MarginModel
    book: Callable[[Positions, ModelParams], MarginResult] | None
    reads: Reads


MODELS: dict[MarginModel, ModelEntry] = {
    MarginModel.STANDARD: ModelEntry(MarginModel.STANDARD, standard_margin, _reads_standard),
    MarginModel.SPAN: ModelEntry(MarginModel.SPAN, span_margin, _reads_span),
    MarginModel.DERIBIT_PM: ModelEntry(MarginModel.DERIBIT_PM, portfolio_margin, _reads_pm),
    MarginModel.VAR: ModelEntry(MarginModel.VAR, None, _reads_var),
    MarginModel.ES: ModelEntry(MarginModel.ES, None, _reads_var),
    # Monte Carlo: margin_engine.montecarlo.mc_margin on the fitted joint model's paths
    MarginModel.MC_VAR: ModelEntry(MarginModel.MC_VAR, None, _reads_var),
    MarginModel.MC_ES: ModelEntry(MarginModel.MC_ES, None, _reads_var),
    MarginModel.HAIRCUT: ModelEntry(MarginModel.HAIRCUT, None, _reads_haircut),
    MarginModel.DERIVE_PMRM2: ModelEntry(MarginModel.DERIVE_PMRM2, derive_margin, _reads_derive),
    MarginModel.HYPERLIQUID: ModelEntry(
        MarginModel.HYPERLIQUID, hyperliquid_margin, _reads_hyperliquid
    ),
    MarginModel.OKX_PM: ModelEntry(MarginModel.OKX_PM, okx_margin, _reads_okx),
    MarginModel.PARADEX_PM: ModelEntry(MarginModel.PARADEX_PM, paradex_margin, _reads_paradex),
    MarginModel.AEVO_PM: ModelEntry(MarginModel.AEVO_PM, aevo_margin, _reads_aevo),
    MarginModel.DELTA_ONLY: ModelEntry(
        MarginModel.DELTA_ONLY, delta_only_margin, _reads_delta_only
    ),
}


def model_named(name: str) -> MarginModel:
    """The book model ``name`` names; :class:`ValueError` listing the choices otherwise."""
    try:
        model = MarginModel(name)
    except ValueError:
        model = None
    if model not in (*BOOK_MODELS, *VENUE_MODELS):
        choices = ", ".join((*BOOK_MODELS, *VENUE_MODELS))
        raise ValueError(f"unknown model {name!r}: choose from {choices}")
    assert model is not None
    return model


def margin(
    positions: Positions,
    model: MarginModel | str,
    params: ModelParams,
    *,
    scenarios: JointScenarios | None = None,
    floor_scenarios: JointScenarios | None = None,
) -> MarginResult:
    """Margin ``positions`` under ``model``.

    VaR and ES need joint ``scenarios`` (and, under the floor anti-procyclicality tool, the
    ``floor_scenarios`` of the long look-back); the other book models need none.
    """
    model = model_named(str(model))
    if model.needs_history:
        if scenarios is None:
            raise ValueError(f"the {model} model needs scenarios from the price history")
        return var_margin(
            positions,
            scenarios,
            params,
            measure=VarMeasure(model.value),
            floor_scenarios=floor_scenarios,
        )
    book = MODELS[model].book
    assert book is not None  # every book model without history has a function
    return book(positions, params)


def parameters_read(
    model: MarginModel | str, document: Document, underlyings: Sequence[str]
) -> dict:
    """The parts of ``document`` that ``model`` reads for a book on ``underlyings``: what its
    margins depend on, and so what keys a cache of them.
    """
    return MODELS[MarginModel(model)].reads(document, underlyings)
