"""Report charts with matplotlib: each one as inline SVG (for the HTML) and PNG (beside the
Markdown), reproducibly — no timestamps or software stamps in either file, fonts drawn as paths
(no font files, no external URLs).

Every function takes plain arrays/frames and returns a :class:`Chart`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

plt.rcParams.update(
    {
        "svg.fonttype": "path",  # glyphs as paths: no font is fetched or needed
        "svg.hashsalt": "margin-workbench",  # stable element ids across runs
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.dpi": 100,
    }
)

ZONE_COLOURS = {"green": "#2e9d57", "yellow": "#e6b400", "red": "#c8372d"}
SET_COLOURS = ("#1f5fa8", "#d9730d")


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    alt: str
    svg: str
    png: bytes

    @property
    def filename(self) -> str:
        return f"{self.id}.png"


def _clean_svg(svg: str) -> str:
    """Inline-ready SVG: no XML prolog, DOCTYPE, metadata or namespace URLs (HTML5 parses
    inline SVG without them), so the report holds no external address at all."""
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    return svg.strip()


def _finish(fig: Figure, chart_id: str, title: str, alt: str) -> Chart:
    fig.tight_layout()
    svg_buffer, png_buffer = io.StringIO(), io.BytesIO()
    fig.savefig(
        svg_buffer,
        format="svg",
        metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
    )
    fig.savefig(png_buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return Chart(chart_id, title, alt, _clean_svg(svg_buffer.getvalue()), png_buffer.getvalue())


def _plain(value: float, _position: int | None = None) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def price_and_volatility(
    chart_id: str, asset: str, close: pd.Series, cond_vol_annual: pd.Series, breaches: Sequence = ()
) -> Chart:
    """Close (left axis, log) and annualised conditional volatility (right), breach days marked."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(close.index, close.to_numpy(), color="#333333", lw=0.9, label=f"{asset} close")
    ax.set_yscale("log")
    # plain-number tick labels: the default log labels are mathtext ($10^{3}$), whose parsing
    # and layout cost more than the rest of the chart together
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(_plain))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylabel("close (USD, log)")
    vol_ax = ax.twinx()
    vol_ax.plot(
        cond_vol_annual.index,
        100 * cond_vol_annual.to_numpy(),
        color=SET_COLOURS[0],
        lw=0.8,
        label="conditional vol",
    )
    vol_ax.set_ylabel("conditional vol (% a year)")
    marked = pd.DatetimeIndex([d for d in pd.DatetimeIndex(breaches) if d in close.index])
    if len(marked):
        ax.scatter(
            marked,
            close.reindex(marked).to_numpy(),
            color=ZONE_COLOURS["red"],
            s=14,
            zorder=3,
            label=f"breach ({len(marked)})",
        )
    handles = ax.get_legend_handles_labels()[0] + vol_ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", frameon=False, fontsize=8)
    ax.set_title(f"{asset}: price, conditional volatility and breaches")
    return _finish(
        fig,
        chart_id,
        f"{asset} price and volatility",
        f"{asset} close and conditional volatility, {len(marked)} breach day(s) marked",
    )


def margin_vs_loss(chart_id: str, title: str, series: Mapping[str, pd.DataFrame]) -> Chart:
    """Margin of each set against the realised loss (same for both sets) over time; breaches marked."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    loss = None
    for k, (label, frame) in enumerate(series.items()):
        colour = SET_COLOURS[k % len(SET_COLOURS)]
        ax.plot(
            frame.index, frame["margin"].to_numpy(), color=colour, lw=1.0, label=f"margin, {label}"
        )
        hits = frame[frame["breach"]]
        ax.scatter(
            hits.index,
            hits["loss"].to_numpy(),
            color=colour,
            marker="x",
            s=18,
            zorder=3,
            label=f"breach, {label} ({len(hits)})",
        )
        loss = frame["loss"]
    if loss is not None:
        ax.plot(
            loss.index,
            loss.to_numpy(),
            color="#888888",
            lw=0.6,
            label="realised loss over the MPOR",
        )
    ax.axhline(0, color="#bbbbbb", lw=0.5)
    ax.set_ylabel("USD")
    ax.legend(loc="upper left", frameon=False, fontsize=8, ncol=2)
    ax.set_title(title)
    return _finish(fig, chart_id, title, f"{title}: margin of each set and the realised loss")


def traffic_light_strip(
    chart_id: str, rows: Sequence[tuple[str, Mapping[str, str]]], labels: Sequence[str]
) -> Chart:
    """One cell per (portfolio × model, set), coloured by its Basel zone."""
    height = max(1.6, 0.28 * len(rows) + 0.8)
    fig, ax = plt.subplots(figsize=(9, height))
    for i, (_, zones) in enumerate(rows):
        for j, label in enumerate(labels):
            zone = zones.get(label)
            ax.add_patch(
                plt.Rectangle((j, i), 0.95, 0.85, color=ZONE_COLOURS.get(zone or "", "#dddddd"))
            )
            ax.text(
                j + 0.47,
                i + 0.42,
                zone or "-",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if zone in ("green", "red") else "black",
            )
    ax.set_xlim(0, len(labels))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks(np.arange(len(labels)) + 0.47, labels)
    ax.xaxis.tick_top()
    ax.set_yticks(np.arange(len(rows)) + 0.42, [name for name, _ in rows], fontsize=7)
    for side in ("left", "bottom", "top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    ax.set_title("Basel traffic light per portfolio and model", pad=18)
    return _finish(
        fig,
        chart_id,
        "Traffic lights",
        "Traffic-light zone of every portfolio and model for each set",
    )


def margin_change_distribution(chart_id: str, changes: np.ndarray, label: str) -> Chart:
    """Histogram of the relative margin change per account and day (proposed / current − 1)."""
    fig, ax = plt.subplots(figsize=(9, 3.0))
    finite = changes[np.isfinite(changes)]
    ax.hist(100 * finite, bins=40, color=SET_COLOURS[1], edgecolor="white")
    ax.axvline(0, color="#333333", lw=0.8)
    if len(finite):
        ax.axvline(
            100 * float(np.median(finite)),
            color=SET_COLOURS[0],
            lw=1,
            ls="--",
            label=f"median {100 * float(np.median(finite)):.1f} %",
        )
        ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel(f"margin change, {label} (%)")
    ax.set_ylabel("account-days")
    ax.set_title("Distribution of the margin change per account")
    return _finish(
        fig,
        chart_id,
        "Margin change per account",
        f"Histogram of the relative margin change per account and day, {len(finite)} values",
    )


def margin_path(chart_id: str, title: str, series: Mapping[str, pd.Series], unit: str) -> Chart:
    """Margin over time for each set (procyclicality)."""
    fig, ax = plt.subplots(figsize=(9, 3.0))
    for k, (label, path) in enumerate(series.items()):
        ax.plot(
            path.index,
            path.to_numpy(),
            color=SET_COLOURS[k % len(SET_COLOURS)],
            lw=1.0,
            label=label,
        )
    ax.set_ylabel(unit)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(title)
    return _finish(fig, chart_id, title, f"{title}, per set")


def correlation_heatmap(
    chart_id: str, assets: Sequence[str], matrix: np.ndarray, title: str
) -> Chart:
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(assets)), assets)
    ax.set_yticks(range(len(assets)), assets)
    for i in range(len(assets)):
        for j in range(len(assets)):
            ax.text(
                j,
                i,
                f"{matrix[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if abs(matrix[i, j]) > 0.6 else "black",
            )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    return _finish(fig, chart_id, title, f"{title} of {', '.join(assets)}")


def sweep_frontier(
    chart_id: str,
    parameter: str,
    points: Sequence[Mapping],
    current: float | None,
    proposed: float | None = None,
) -> Chart:
    """Coverage against capital over a sweep: breaches (y) against mean capital in USD (x),
    one dot per value coloured by its zone, the current and proposed values marked."""
    fig, ax = plt.subplots(figsize=(9, 3.4))
    xs = np.array([p["mean_capital_usd"] for p in points], dtype=float)
    ys = np.array([p["breaches"] for p in points], dtype=float)
    ax.plot(xs, ys, color="#888888", lw=0.8, zorder=1)
    for p, x, y in zip(points, xs, ys, strict=True):
        ax.scatter(x, y, s=22, color=ZONE_COLOURS.get(str(p["zone"]), "#777777"), zorder=2)
        ax.annotate(
            f"{p['value']:g}", (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7
        )
    for value, label, colour in (
        (current, "current", SET_COLOURS[0]),
        (proposed, "proposed", SET_COLOURS[1]),
    ):
        hit = [k for k, p in enumerate(points) if value is not None and p["value"] == value]
        if hit:
            k = hit[0]
            ax.scatter(
                xs[k],
                ys[k],
                s=120,
                facecolors="none",
                edgecolors=colour,
                lw=1.6,
                zorder=3,
                label=f"{label} ({value:g})",
            )
    ax.set_xlabel("mean capital (USD, all portfolios)")
    ax.set_ylabel("breaches")
    ax.set_title(f"Coverage against capital as {parameter} varies")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=8)
    return _finish(
        fig,
        chart_id,
        f"Frontier: {parameter}",
        f"Breaches against mean capital for {len(points)} values of {parameter}",
    )


def cascade(
    chart_id: str,
    title: str,
    path: Sequence[float],
    prices: Mapping[str, Sequence[float]],
    liquidations: Mapping[str, Sequence[int]],
) -> Chart:
    """A liquidation cascade: the window's price without impact and each set's price with it
    (top), and liquidations per step for each set (bottom)."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 4.2), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    steps = np.arange(len(path))
    top.plot(steps, path, color="#888888", lw=1.0, ls="--", label="without impact")
    width = 0.8 / max(len(liquidations), 1)
    for k, (label, series) in enumerate(prices.items()):
        top.plot(steps, series, color=SET_COLOURS[k % len(SET_COLOURS)], lw=1.2, label=label)
    for k, (label, counts) in enumerate(liquidations.items()):
        bottom.bar(
            steps + (k - (len(liquidations) - 1) / 2) * width,
            counts,
            width=width,
            color=SET_COLOURS[k % len(SET_COLOURS)],
            label=label,
        )
    top.set_ylabel("price (USD)")
    bottom.set_ylabel("liquidations")
    bottom.set_xlabel("step (four a day)")
    top.set_title(title)
    top.legend(frameon=False, fontsize=8)
    return _finish(
        fig,
        chart_id,
        title,
        f"Price with and without liquidation impact and liquidations per step: {title}",
    )


def waterfall(
    chart_id: str, title: str, start: float, steps: Sequence[tuple[str, float]], unit: str
) -> Chart:
    """A margin change as a waterfall: the starting margin, each part's step (up red, down
    green) and the end, which the steps reach exactly."""
    labels = ["from", *(label for label, _ in steps), "to"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    level = start
    ax.bar(0, start, color="#888888")
    for k, (_, change) in enumerate(steps, start=1):
        colour = "#c8372d" if change > 0 else "#2e9d57"
        ax.bar(k, change, bottom=level, color=colour)
        level += change
    ax.bar(len(labels) - 1, level, color="#1f5fa8")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(unit)
    ax.set_title(title)
    return _finish(
        fig, chart_id, title, f"Margin change from {start:,.6g} to {level:,.6g} {unit}: {title}"
    )


def parameter_history(
    chart_id: str,
    title: str,
    days: Sequence[str],
    recommended: Sequence[float],
    in_force: Sequence[float | None],
    bounds: tuple[float | None, float | None],
) -> Chart:
    """A parameter over time: each calibration's recommendation, the value in force on its
    day, and the policy's bounds as a band."""
    fig, ax = plt.subplots(figsize=(7, 2.6))
    x = pd.to_datetime(list(days))
    low, high = bounds
    if low is not None or high is not None:
        values = [
            v for v in (*recommended, *(v for v in in_force if v is not None)) if v is not None
        ]
        bottom = low if low is not None else min(values)
        top = high if high is not None else max(values)
        ax.axhspan(bottom, top, color="#e8eef7", label="policy bounds")
    ax.plot(x, recommended, marker="o", ms=3, color=SET_COLOURS[1], lw=1.2, label="recommended")
    force = [np.nan if v is None else v for v in in_force]
    ax.step(x, force, where="post", color=SET_COLOURS[0], lw=1.4, label="in force")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    fig.autofmt_xdate()
    return _finish(fig, chart_id, title, f"{title}: recommended, in force and the policy's bounds")
