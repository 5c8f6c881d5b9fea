"""The hash chain as pure functions: every kind of tampering names the first bad entry."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import T0

from governance.audit import GENESIS_HASH, AuditEntry, entry_hash, next_entry, verify_chain


def _chain(n: int = 6) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        entries.append(
            next_entry(
                entries[-1] if entries else None,
                at=T0 + timedelta(minutes=i),
                actor=f"actor{i % 2}",
                action="approved" if i % 2 else "submitted",
                subject=f"P-{i:012d}",
                details={"value": 0.1 * i, "nested": {"b": [1, 2], "a": "é"}},
            )
        )
    return entries


def test_the_hash_is_sha256_of_the_canonical_entry() -> None:
    first = _chain(1)[0]
    body = {
        "seq": 1,
        "at": "2026-01-05T09:00:00.000000+00:00",
        "actor": "actor0",
        "action": "submitted",
        "subject": "P-000000000000",
        "details": {"nested": {"a": "é", "b": [1, 2]}, "value": 0.0},
        "prev_hash": GENESIS_HASH,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert first.hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert first.prev_hash == GENESIS_HASH


def test_an_untouched_chain_verifies() -> None:
    entries = _chain()
    report = verify_chain(entries)
    assert report.ok and report.entries == 6 and report.head_hash == entries[-1].hash
    assert verify_chain([]).ok


@pytest.mark.parametrize("field", ["at", "actor", "action", "subject", "details"])
def test_editing_any_field_names_the_entry(field: str) -> None:
    entries = _chain()
    value = {
        "at": entries[3].at + timedelta(microseconds=1),
        "actor": "mallory",
        "action": "enacted",
        "subject": "P-x",
        "details": {**entries[3].details, "value": 0.30000000000000004 + 1e-9},
    }[field]
    entries[3] = replace(entries[3], **{field: value})
    report = verify_chain(entries)
    assert not report.ok and report.first_bad == 4 and "edited" in report.problem


def test_rehashing_an_edited_entry_breaks_the_next_link() -> None:
    entries = _chain()
    forged = replace(entries[2], actor="mallory")
    entries[2] = replace(forged, hash=forged.expected_hash())
    report = verify_chain(entries)
    assert report.first_bad == 4 and "does not link to entry 3" in report.problem


def test_deleting_an_entry_names_the_one_after_the_gap() -> None:
    entries = _chain()
    del entries[2]
    report = verify_chain(entries)
    assert report.first_bad == 4 and "deleted or reordered" in report.problem


def test_reordering_by_swapping_sequence_numbers_is_detected() -> None:
    entries = _chain()
    entries[2], entries[3] = replace(entries[3], seq=3), replace(entries[2], seq=4)
    report = verify_chain(entries)
    assert not report.ok and report.first_bad == 3


def test_a_truncated_tail_needs_the_published_head() -> None:
    entries = _chain()
    published = entries[-1].hash
    assert verify_chain(entries[:-1]).ok  # a shorter chain is still a chain …
    report = verify_chain(entries[:-1], expect_head=published[:12])
    assert (
        not report.ok and report.first_bad == 6 and "were removed" in report.problem
    )  # … but not ours
    assert verify_chain(entries, expect_head=published[:12]).ok
    assert verify_chain(
        entries, expect_head=entries[2].hash
    ).ok  # an older published head is still in it
    with pytest.raises(ValueError, match="at least 8"):
        verify_chain(entries, expect_head="abc")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        entry_hash(1, T0.replace(tzinfo=None), "a", "b", "c", {}, GENESIS_HASH)
