"""The committee portal (``mwb site``) in a real headless Chromium: on the demo warehouse with
three proposals in different states (draft, submitted with its report, approved and in shadow),
every page loads without a console error, every link resolves to a file of the site and nothing
is fetched from outside it; site.json is strict JSON whose reference ids are the SHA-256 of the
reports it links."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from chromium import session
from helpers import run_mwb

from governance.proposals import parse_proposal
from governance.registry import Registry
from governance.signing import read_private_key, sign
from pipelines.demo import DEMO_COMMITTEE, run_demo
from pipelines.governance import keys_dir
from pipelines.settings import load_settings
from pipelines.sources.synthetic import DEFAULT_SEED
from pipelines.warehouse import connect

browser = pytest.fixture(scope="module")(session)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    home = tmp_path_factory.mktemp("site-home")
    settings = load_settings(home)
    run_demo(settings, DEFAULT_SEED, None)  # a draft and a submitted proposal with its report
    con = connect(settings.warehouse_path)
    try:
        registry = Registry(con)
        document = parse_proposal(
            {
                "title": "Wider ETH range",
                "author": "risk",
                "motivation": "test",
                "changes": {"underlyings.ETH.pm.price_range": 0.2},
            }
        )
        state = registry.submit(document, actor="risk", now=datetime.now(UTC))
        for name in DEMO_COMMITTEE[:2]:
            registry.vote(
                state.id,
                member=name,
                decision="approve",
                signature=sign(
                    read_private_key(keys_dir(settings) / f"{name}.pem"),
                    "approve",
                    state.proposal.fingerprint,
                ),
                now=datetime.now(UTC),
            )
        registry.start_shadow(
            state.id, actor="risk", now=datetime.now(UTC), first_day=date(2024, 11, 1), days=10
        )
    finally:
        con.close()
    ran = run_mwb("shadow", "run", "--day", "2024-11-20", home=home)
    assert ran.returncode == 0, ran.stderr
    built = run_mwb("site", "--json", home=home)
    assert built.returncode == 0, built.stderr
    return Path(json.loads(built.stdout)["out"])


def test_site_json_is_strict_and_its_reference_ids_are_the_reports(site) -> None:
    payload = json.loads(
        (site / "site.json").read_text(),
        parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"),
    )
    statuses = sorted(p["status"] for p in payload["proposals"])
    assert statuses == ["approved", "draft", "submitted"]
    linked = [p["report"] for p in payload["proposals"] if p["report"]]
    linked += [p["shadow"]["report"] for p in payload["proposals"] if p["shadow"]]
    linked += payload["calibration_reports"]
    assert len(linked) >= 3
    for report in linked:
        assert hashlib.sha256((site / report["path"]).read_bytes()).hexdigest() == report["sha256"]
    assert all(r["as_recorded"] for r in payload["calibration_reports"])
    approved = next(p for p in payload["proposals"] if p["status"] == "approved")
    assert approved["approvals_count"] == approved["quorum"] == 2
    assert approved["shadow"]["recorded"] == 10
    assert payload["audit_head"]["seq"] >= 5 and len(payload["audit_head"]["hash"]) == 64
    assert payload["calibration_history"]


def test_every_page_loads_cleanly_and_links_stay_inside(site, browser) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 7  # index, calibration, three proposals, the reports
    for page in pages:
        browser.events.clear()
        browser.open(page.as_uri())
        assert browser.console_errors() == [], page
        resources = browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        assert all(r.startswith("file://") or r.startswith("data:") for r in resources), page
        links = browser.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
        for link in links:
            url = urlparse(link)
            assert url.scheme == "file", f"{page}: {link} leaves the site"
            target = Path(unquote(url.path))
            assert target.exists(), f"{page}: {link} does not resolve"
            assert site in target.parents or target == site, f"{page}: {link} outside the site"
    browser.events.clear()
    browser.open((site / "index.html").as_uri())
    text = browser.evaluate("document.body.innerText")
    assert "Audit head" in text and "approved" in text and "draft" in text
