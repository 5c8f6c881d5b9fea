"""Charts: inline-ready SVG with no external address, reproducible bytes, drawn PNGs."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from reports import charts


def _series() -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=60, freq="D")
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "margin": 100 + rng.normal(0, 5, 60).cumsum(),
            "loss": rng.normal(0, 40, 60),
            "breach": rng.random(60) < 0.1,
        },
        index=index,
    )


def test_svg_is_inline_ready_and_has_no_address() -> None:
    chart = charts.margin_vs_loss(
        "m",
        "Margin",
        {"current": _series(), "proposed": _series().assign(margin=lambda f: f["margin"] * 1.1)},
    )
    assert chart.svg.startswith("<svg") and chart.svg.endswith("</svg>")
    for forbidden in (
        "<?xml",
        "<!DOCTYPE",
        "http",
        "xmlns",
        "<metadata",
        "<script",
        "<image",
        "@font-face",
    ):
        assert forbidden not in chart.svg, forbidden


def test_charts_are_reproducible_bytes() -> None:
    a = charts.traffic_light_strip(
        "t", [("a · pm", {"current": "green", "proposed": "red"})], ["current", "proposed"]
    )
    b = charts.traffic_light_strip(
        "t", [("a · pm", {"current": "green", "proposed": "red"})], ["current", "proposed"]
    )
    assert a.svg == b.svg and a.png == b.png
    assert b"Software" not in a.png and b"Date" not in a.png


def test_png_is_a_drawn_image() -> None:
    chart = charts.correlation_heatmap(
        "c", ["BTC", "ETH"], np.array([[1.0, 0.8], [0.8, 1.0]]), "correlation"
    )
    pixels = np.asarray(Image.open(io.BytesIO(chart.png)).convert("RGB")).reshape(-1, 3)
    assert np.mean(pixels.sum(axis=1) < 720) > 0.05
    assert chart.filename == "c.png"


def test_empty_inputs_still_draw_a_labelled_chart() -> None:
    chart = charts.margin_change_distribution(
        "d", np.array([np.nan, np.inf]), "proposed vs current"
    )
    assert "d.png" == chart.filename and chart.png.startswith(b"\x89PNG")
