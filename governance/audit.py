"""The hash-chained audit log, as pure functions over entries.

Entry ``n`` stores the hash of entry ``n - 1``; its own hash covers every field including that
link:

.. math::

    h_n = \\operatorname{SHA256}\\big(\\operatorname{json}(n, t_n, \\text{actor}_n,
          \\text{action}_n, \\text{subject}_n, \\text{details}_n, h_{n-1})\\big),
    \\qquad h_0 = 0^{64}

with ``json`` canonical (sorted keys, no spaces, UTF-8). Editing any field breaks ``h_n``;
deleting or inserting a row breaks the sequence or the link; reordering (swapping ``seq``)
breaks the hash of the moved rows. Truncating the tail leaves a valid shorter chain, which
only an externally kept head (``expect_head``, printed by every governance command) or a
state row that cites a missing entry can reveal — the registry checks both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64


def timestamp(at: datetime) -> str:
    """The hashed form of a time: UTC ISO 8601 with microseconds (DuckDB's resolution)."""
    if at.tzinfo is None:
        raise ValueError(f"audit times must be timezone-aware, got naive {at!r}")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return entry_hash(
            self.seq, self.at, self.actor, self.action, self.subject, self.details, self.prev_hash
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": timestamp(self.at),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def entry_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "seq": seq,
        "at": timestamp(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def next_entry(
    previous: AuditEntry | None,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any],
) -> AuditEntry:
    """The entry that follows ``previous`` (``None`` for the first)."""
    seq = 1 if previous is None else previous.seq + 1
    prev_hash = GENESIS_HASH if previous is None else previous.hash
    # round-trip through JSON so the stored and the hashed details are the same object
    details = json.loads(canonical(details))
    return AuditEntry(
        seq,
        at,
        actor,
        action,
        subject,
        details,
        prev_hash,
        entry_hash(seq, at, actor, action, subject, details, prev_hash),
    )


@dataclass(frozen=True)
class ChainReport:
    """The outcome of :func:`verify_chain`; ``first_bad`` is the seq of the first bad entry."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad: int | None = None
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_bad": self.first_bad,
            "problem": self.problem,
        }


def verify_chain(entries: Sequence[AuditEntry], *, expect_head: str | None = None) -> ChainReport:
    """Recompute the chain of ``entries`` (in ``seq`` order) and name the first bad entry.

    ``expect_head`` is a hash (or a prefix of at least 8 hex digits; the command line asks for
    :data:`MIN_HEAD_DIGITS`, as an 8-digit prefix can be ground out in hours) kept outside the
    database, e.g. from a published report; the chain must contain it, which detects a
    truncated or rewritten tail.
    """
    previous_hash = GENESIS_HASH
    for position, entry in enumerate(entries, start=1):

        def bad(problem: str, entry: AuditEntry = entry) -> ChainReport:
            return ChainReport(False, len(entries), entry.seq, entry.hash, entry.seq, problem)

        if entry.seq != position:
            what = "deleted or reordered" if entry.seq > position else "duplicated or reordered"
            return bad(f"entry {entry.seq} sits at position {position}: an entry was {what}")
        if entry.prev_hash != previous_hash:
            return bad(
                f"entry {entry.seq} ({entry.action} {entry.subject}) does not link to entry {entry.seq - 1}: "
                "an entry before it was edited, deleted, inserted or reordered"
            )
        if entry.expected_hash() != entry.hash:
            return bad(
                f"entry {entry.seq} ({entry.action} {entry.subject}) does not match its hash: it was edited"
            )
        previous_hash = entry.hash
    head_seq = entries[-1].seq if entries else 0
    if expect_head is not None:
        prefix = expect_head.lower().strip()
        if len(prefix) < 8:
            raise ValueError("expect_head needs at least 8 hex digits of the head hash")
        if not any(e.hash.startswith(prefix) for e in entries) and not GENESIS_HASH.startswith(
            prefix
        ):
            return ChainReport(
                False,
                len(entries),
                head_seq,
                previous_hash,
                head_seq + 1,
                f"the log does not contain the published head {prefix[:16]}…: entries after "
                f"{head_seq} were removed, or the chain was rewritten and re-hashed",
            )
    return ChainReport(True, len(entries), head_seq, previous_hash)


MIN_HEAD_DIGITS = 16


def head_prefix(text: str) -> str:
    """A published head hash as given on the command line: at least :data:`MIN_HEAD_DIGITS`
    hex digits (a prefix of the 64), lower-cased; anything else is a :class:`ValueError`."""
    prefix = text.strip().lower()
    if not all(c in "0123456789abcdef" for c in prefix) or not prefix:
        raise ValueError(f"{text[:80]!r} is not a hex hash")
    if not MIN_HEAD_DIGITS <= len(prefix) <= 64:
        raise ValueError(
            f"give {MIN_HEAD_DIGITS} to 64 hex digits of the head hash, got {len(prefix)}"
        )
    return prefix
