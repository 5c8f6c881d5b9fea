"""``mwb replicate``: a venue's margin on a file in the venue's own format, beside the venue's
published result."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli.market import JSON_HELP
from pipelines.cli.output import out, print_json, table
from pipelines.errors import BadInputError


def replicate(
    venue: str = typer.Argument(..., help="deribit | derive | okx | paradex | aevo | hyperliquid"),
    file: Path = typer.Argument(
        ...,
        help="A Deribit private/pme/simulate reply (JSON), a Derive PMRM 2 portfolio case "
        "(JSON, as in v2-core), or a case YAML (as_of, spot, positions, params, published) for "
        "any venue but Deribit.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Initial and maintenance margin and every scenario's P&L under the venue's model; where
    the file carries the venue's own result, both and their difference."""
    from pipelines.replicate import Venue, replicate

    try:
        chosen = Venue(venue.lower())
    except ValueError:
        raise BadInputError(
            f"venue {venue!r}: choose from {', '.join(v.value for v in Venue)}"
        ) from None
    payload = replicate(chosen, file)
    if as_json:
        print_json(payload)
        return
    published = payload["published"]
    theirs = {} if published is None else {s["index"]: s["pnl"] for s in published["scenarios"]}
    if payload.get("components"):
        out.print(
            "components: "
            + ", ".join(f"{k} {v:,.6f}" for k, v in sorted(payload["components"].items()))
        )
    rows = [
        (s["index"], s["label"], f"{s['pnl']:,.6f}")
        + ((f"{theirs[s['index']]:,.6f}", f"{s['pnl'] - theirs[s['index']]:.3e}") if theirs else ())
        for s in payload["scenarios"]
    ]
    columns = ["#", "scenario", "ours"] + (["published", "difference"] if theirs else [])
    out.print(table(f"{payload['model']} scenarios: {file}", columns, rows))
    summary = [
        ("initial margin", payload["initial_margin"]),
        ("maintenance margin", payload["maintenance_margin"]),
    ]
    lines = []
    for name, value in summary:
        key = name.replace(" ", "_")
        line = f"{name}: {value:,.6f}"
        if published is not None:
            line += (
                f" (published {published[key]:,.6f}, difference {payload['difference'][key]:.3e})"
            )
        lines.append(line)
    worst = payload["worst_scenario"]
    if "basis_contingency" in payload:  # Derive's case format: the basis can be the worst
        lines.append(
            "worst: " + ("the basis contingency" if worst is None else f"scenario {worst}")
        )
    out.print("\n".join(lines))
