"""Concurrent approvals and enactments lose no event and duplicate none (issue 5, Must show).

DuckDB lets one process write a database file at a time: the second process's open waits with
backoff (``pipelines.warehouse.connect``); within a process, conflicting transactions retry.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from concurrency_worker import member_session
from conftest import T0, make_policy

from governance.parameters import default_parameter_set
from governance.proposals import parse_proposal
from governance.registry import Registry
from governance.workflow import Status
from pipelines.warehouse import connect

HERE = Path(__file__).parent
PATHS = [
    "collateral.ETH.haircut",
    "collateral.BTC.haircut",
    "collateral.SOL.haircut",
    "spreads.BTC-ETH.credit",
    "spreads.BTC-SOL.credit",
    "spreads.ETH-SOL.credit",
    "underlyings.BTC.pm.price_range",
    "underlyings.ETH.pm.price_range",
]


def _setup(database: Path) -> list[str]:
    con = connect(database)
    registry = Registry(con)
    registry.initialise(default_parameter_set(), make_policy(), actor="admin", now=T0)
    active = default_parameter_set()
    ids = []
    for path in PATHS:
        document = parse_proposal(
            {
                "title": f"change {path}",
                "author": "risk",
                "motivation": "test",
                "changes": {path: round(active.get(path) * 0.9, 6)},
            }
        )
        ids.append(registry.submit(document, actor="risk", now=datetime.now(UTC)).id)
    con.close()
    return ids


def _check(database: Path, ids: list[str], outcomes: list[tuple[str, str, str]]) -> None:
    con = connect(database)
    registry = Registry(con)
    entries = registry.audit_entries()
    actions = Counter(e.action for e in entries)
    refusals = sum(o[2].startswith("refused") for o in outcomes)
    # every vote landed exactly once, in the log and in the table
    assert actions["approved"] == 2 * len(ids)
    votes = con.execute("SELECT proposal_id, member FROM gov.approvals").fetchall()
    assert sorted(votes) == sorted((i, m) for i in ids for m in ("alice", "bob"))
    # exactly one enactment won; every other attempt was refused and audited
    assert actions["enacted"] == 1 and len(registry.activations()) == 2
    assert sum(o == ("enact", o[1], "ok") for o in outcomes) == 1
    assert actions["enact_refused"] == refusals
    assert len(entries) == 1 + len(ids) + 2 * len(ids) + 1 + refusals
    assert len({e.hash for e in entries}) == len(entries)
    statuses = Counter(r.status for r in registry.proposals())
    assert statuses == {Status.ENACTED: 1, Status.APPROVED: len(ids) - 1}
    assert registry.verify().ok
    con.close()


def test_two_processes_approving_and_enacting(tmp_path) -> None:
    database = tmp_path / "warehouse.duckdb"
    ids = _setup(database)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "concurrency_worker.py"),
                str(database),
                member,
                str(tmp_path / f"{member}.json"),
                *ids,
            ],
            cwd=HERE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for member in ("alice", "bob")
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"{m}.json.ready").exists() for m in ("alice", "bob")):
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), (
            "workers did not start"
        )
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
    outcomes = [
        tuple(o) for m in ("alice", "bob") for o in json.loads((tmp_path / f"{m}.json").read_text())
    ]
    assert all(o[2] == "ok" for o in outcomes if o[0] == "approve")
    _check(database, ids, outcomes)
    # the two really ran at the same time: their entries interleave in the log
    con = connect(database)
    actors = [e.actor for e in Registry(con).audit_entries() if e.actor in ("alice", "bob")]
    con.close()
    assert sum(a != b for a, b in zip(actors, actors[1:], strict=False)) >= 2, actors


def test_two_threads_with_their_own_connections(tmp_path) -> None:
    """Same process, same database: DuckDB's optimistic transactions conflict and are retried."""
    database = tmp_path / "warehouse.duckdb"
    ids = _setup(database)
    con = connect(database)
    outcomes: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def member_thread(member: str) -> None:
        cursor = con.cursor()  # a cursor is a connection of its own to the same database

        @contextlib.contextmanager
        def open_registry():
            yield Registry(cursor)

        for outcome in member_session(open_registry, member, ids):
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=member_thread, args=(m,)) for m in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    con.close()
    assert all(o[2] == "ok" for o in outcomes if o[0] == "approve")
    _check(database, ids, outcomes)
