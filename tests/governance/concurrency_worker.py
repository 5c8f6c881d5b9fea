"""A committee member's session for test_concurrency: approve every proposal, then try to enact
each. Run as a script it is one process, opening the warehouse afresh for every step as
separate `mwb` invocations would.

usage: python concurrency_worker.py WAREHOUSE MEMBER OUT.json PROPOSAL_ID...
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

from conftest import member_key

from governance.registry import Registry
from governance.signing import sign
from governance.workflow import Refusal


def member_session(
    open_registry: Callable[[], AbstractContextManager[Registry]],
    member: str,
    proposal_ids: list[str],
    pause: float = 0.0,
) -> Iterator[tuple[str, str, str]]:
    """Yield (action, proposal id, "ok" or "refused: …") for each step, in order."""
    key = member_key(member)

    def approve(registry: Registry, proposal_id: str) -> None:
        fingerprint = registry.state(proposal_id).proposal.fingerprint
        registry.vote(
            proposal_id,
            member=member,
            decision="approve",
            signature=sign(key, "approve", fingerprint),
            now=datetime.now(UTC),
        )

    def enact(registry: Registry, proposal_id: str) -> None:
        registry.enact(proposal_id, actor=member, now=datetime.now(UTC))

    for action, step in (("approve", approve), ("enact", enact)):
        for proposal_id in proposal_ids:
            time.sleep(random.uniform(0, pause))  # people pause between commands; lets the other in
            with open_registry() as registry:
                try:
                    step(registry, proposal_id)
                    result = "ok"
                except Refusal as refusal:
                    result = f"refused: {refusal}"
            yield action, proposal_id, result


def main() -> None:
    from contextlib import contextmanager

    from pipelines.warehouse import connect

    database, member, out, *proposal_ids = sys.argv[1:]

    @contextmanager
    def open_registry():
        con = connect(database, wait_seconds=120)
        try:
            yield Registry(con)
        finally:
            con.close()

    # start together: say we are ready (imports done), then wait for the go file
    Path(out + ".ready").touch()
    go = Path(out).parent / "go"
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    outcomes = list(member_session(open_registry, member, proposal_ids, pause=0.15))
    Path(out).write_text(json.dumps(outcomes))


if __name__ == "__main__":
    main()
