"""The proposals inbox survives bad entries (issue 13, "Must show"): a directory, a dangling
symlink, a symlink to /dev/zero, a FIFO and a malformed file beside a valid proposal — the
valid one runs, each other entry is reported once with its reason, and a tick stays quick."""

from __future__ import annotations

import logging
import os
import time

import dagster as dg

from pipelines.defs.workflows.sensors import proposal_files_sensor

VALID = "title: a\nauthor: b\nmotivation: c\nchanges:\n  collateral.ETH.haircut: 0.09\n"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_bad_entries_are_skipped_once_and_never_block_the_valid_one(tmp_path, monkeypatch) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setenv("MWB_PROPOSALS_INBOX", str(inbox))
    (inbox / "a_directory.yaml").mkdir()
    (inbox / "b_dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    (inbox / "c_zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(inbox / "d_fifo.yaml")
    (inbox / "e_malformed.yaml").write_text("title: [unclosed\n")
    (inbox / "f_outside.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    (tmp_path / "elsewhere.yaml").write_text(VALID)
    (inbox / "z_valid.yaml").write_text(VALID)
    instance = dg.DagsterInstance.ephemeral()

    collected = _Collect()

    def tick(cursor=None):
        context = dg.build_sensor_context(instance=instance, cursor=cursor)
        context.log.addHandler(collected)  # the sensor's own logger
        return proposal_files_sensor(context)

    started = time.perf_counter()
    first = tick()
    assert time.perf_counter() - started < 5
    (request,) = first.run_requests
    assert request.tags["proposal_file"] == "z_valid.yaml"
    skipped = [m for m in collected.messages if "skipped" in m]
    reasons = {
        name: next(m for m in skipped if name in m)
        for name in ("a_directory", "b_dangling", "c_zero", "d_fifo", "e_malformed", "f_outside")
    }
    assert "a directory" in reasons["a_directory"]
    assert "dangling" in reasons["b_dangling"]
    assert "outside the inbox" in reasons["c_zero"] and "outside the inbox" in reasons["f_outside"]
    assert "not a regular file" in reasons["d_fifo"]
    assert "line 2, column 1" in reasons["e_malformed"]

    collected.messages.clear()
    second = tick(first.cursor)
    assert second.run_requests == []
    assert not [m for m in collected.messages if "skipped" in m]  # each reported once

    (inbox / "e_malformed.yaml").write_text(VALID.replace("0.09", "0.085"))  # fixed: it runs
    third = tick(second.cursor)
    (fixed,) = third.run_requests
    assert fixed.tags["proposal_file"] == "e_malformed.yaml"
