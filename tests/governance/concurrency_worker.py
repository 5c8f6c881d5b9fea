"""A committee member's process for test_concurrency: approve every proposal, then try to enact
each, opening the warehouse afresh for every step as separate `mwb` invocations would.

usage: python concurrency_worker.py WAREHOUSE MEMBER OUT.json PROPOSAL_ID...
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from conftest import member_key

from governance.registry import Registry
from governance.signing import sign
from governance.workflow import Refusal
from pipelines.warehouse import connect


def step(database: str, action) -> str:
    time.sleep(random.uniform(0, 0.15))  # people pause between commands; lets the other process in
    con = connect(database, wait_seconds=120)
    try:
        action(Registry(con))
        return "ok"
    except Refusal as refusal:
        return f"refused: {refusal}"
    finally:
        con.close()


def main() -> None:
    database, member, out, *proposal_ids = sys.argv[1:]
    key = member_key(member)
    # start together: say we are ready (imports done), then wait for the go file
    Path(out + ".ready").touch()
    go = Path(out).parent / "go"
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    outcomes = []
    for proposal_id in proposal_ids:

        def approve(registry: Registry, proposal_id=proposal_id) -> None:
            fingerprint = registry.state(proposal_id).proposal.fingerprint
            registry.vote(
                proposal_id,
                member=member,
                decision="approve",
                signature=sign(key, "approve", fingerprint),
                now=datetime.now(UTC),
            )

        outcomes.append(("approve", proposal_id, step(database, approve)))
    for proposal_id in proposal_ids:

        def enact(registry: Registry, proposal_id=proposal_id) -> None:
            registry.enact(proposal_id, actor=member, now=datetime.now(UTC))

        outcomes.append(("enact", proposal_id, step(database, enact)))
    with open(out, "w") as handle:
        json.dump(outcomes, handle)


if __name__ == "__main__":
    main()
