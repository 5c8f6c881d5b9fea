"""The governance registry's SQL: every read and write of the warehouse's ``gov`` schema.

The schema itself is governance's own (``governance/migrations``, applied by the warehouse's
migration runner). :class:`GovStore` knows tables and transactions, not rules: what may be
written, and when, is :mod:`governance.registry` (the commands) and :mod:`governance.workflow`;
what the rows must agree with is :mod:`governance.reconcile`.

Every write runs in one DuckDB transaction (:meth:`GovStore.run`), retried with backoff when
another connection's transaction conflicts; across processes DuckDB's file lock serialises
whole connections (see :func:`pipelines.warehouse.connect`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import duckdb

from governance.audit import AuditEntry, next_entry
from governance.parameters import ParameterSet
from governance.policy import Policy
from governance.workflow import Event, Refusal, Status

T = TypeVar("T")

_CONFLICTS = (duckdb.TransactionException, duckdb.ConstraintException)
_AUDIT_COLUMNS = "seq, logged_at, actor, action, subject, details, prev_hash, hash"
_ACTIVATION_COLUMNS = (
    "seq, parameter_set, policy, effective_from, proposal_id, activated_at, audit_seq"
)
_PROPOSAL_LIST_COLUMNS = (
    "proposal_id, fingerprint, kind, title, author, status, base_set, proposed_set, "
    "proposed_policy, policy_fingerprint, created_by, created_at, updated_at, effective_from, "
    "rolled_back_by"
)
_PROPOSAL_FULL_COLUMNS = (
    "proposal_id, fingerprint, kind, title, author, document, base_set, proposed_set, "
    "proposed_policy, policy_fingerprint, created_by, created_at, updated_at, effective_from, "
    "rolled_back_by"
)


def registry_present(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the connection's database holds an initialised registry (a database the
    migrations never ran on has no ``gov`` tables: no registry either)."""
    tables = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'gov' AND table_name = 'activations'"
    ).fetchone()
    if not tables or not tables[0]:
        return False
    rows = con.execute("SELECT count(*) FROM gov.activations").fetchone()
    return bool(rows and rows[0] > 0)


def entry_of(row: tuple) -> AuditEntry:
    """An audit entry from its ``gov.audit_log`` row."""
    seq, at, actor, action, subject, details, prev_hash, hash_ = row
    return AuditEntry(seq, at, actor, action, subject, json.loads(details), prev_hash, hash_)


class GovStore:
    """The ``gov`` tables over one open warehouse connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, retries: int = 8) -> None:
        self.con = con
        self.retries = retries

    # ------------------------------------------------------------------ transactions
    def run(self, step: Callable[[], T]) -> T:
        """Run ``step`` in one transaction, retrying with backoff on write conflicts.

        A :class:`~governance.workflow.Refusal` raised by ``step`` rolls it back; its event is
        then appended alone, in a transaction of its own, and the refusal re-raised.
        """
        delay = 0.02
        for attempt in range(self.retries + 1):
            self.con.execute("BEGIN TRANSACTION")
            try:
                result = step()
                self.con.execute("COMMIT")
                return result
            except Refusal as refusal:
                self._rollback()
                self.run(functools.partial(self.append, refusal.event))
                raise
            except _CONFLICTS:
                self._rollback()
                if attempt == self.retries:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
            except BaseException:
                self._rollback()
                raise
        raise AssertionError("unreachable")

    def _scalar(self, sql: str, parameters: list[Any] | None = None) -> Any:
        """The one value an aggregate query returns."""
        row = self.con.execute(sql, parameters or []).fetchone()
        assert row is not None  # an aggregate always returns a row
        return row[0]

    def _rollback(self) -> None:
        # a failed COMMIT has already ended the transaction
        with contextlib.suppress(duckdb.TransactionException):
            self.con.execute("ROLLBACK")

    # ------------------------------------------------------------------ audit log
    def append(self, event: Event) -> AuditEntry:
        """Chain ``event`` onto the log (inside the caller's transaction)."""
        row = self.con.execute(
            f"SELECT {_AUDIT_COLUMNS} FROM gov.audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        entry = next_entry(
            entry_of(row) if row else None,
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            details=event.details,
        )
        self.con.execute(
            "INSERT INTO gov.audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                entry.seq,
                entry.at,
                entry.actor,
                entry.action,
                entry.subject,
                json.dumps(entry.details),
                entry.prev_hash,
                entry.hash,
            ],
        )
        return entry

    def link(self, table: str, key: str, entry: AuditEntry) -> None:
        """Remember which audit entry (and its hash) a state row was written with."""
        self.con.execute(
            "INSERT OR REPLACE INTO gov.audit_links VALUES (?, ?, ?, ?)",
            [table, key, entry.seq, entry.hash],
        )

    def audit_rows(self) -> list[tuple]:
        return self.con.execute(
            f"SELECT {_AUDIT_COLUMNS} FROM gov.audit_log ORDER BY seq"
        ).fetchall()

    def links(self) -> list[tuple[str, str, int, str]]:
        return self.con.execute(
            "SELECT table_name, row_key, audit_seq, audit_hash FROM gov.audit_links ORDER BY audit_seq"
        ).fetchall()

    # ------------------------------------------------------------------ shadow runs
    def insert_shadow(
        self, proposal_id: str, shadow_set: str, first_day: Any, days: int, now: datetime, seq: int
    ) -> None:
        self.con.execute(
            "INSERT INTO gov.shadows VALUES (?, ?, ?, ?, ?, ?)",
            [proposal_id, shadow_set, first_day, days, now, seq],
        )

    def shadow_row(self, proposal_id: str) -> tuple | None:
        return self.con.execute(
            "SELECT proposal_id, shadow_set, first_day, days, started_at, audit_seq "
            "FROM gov.shadows WHERE proposal_id = ?",
            [proposal_id],
        ).fetchone()

    def shadow_rows(self) -> list[tuple]:
        return self.con.execute(
            "SELECT proposal_id, shadow_set, first_day, days, started_at, audit_seq "
            "FROM gov.shadows ORDER BY started_at"
        ).fetchall()

    def insert_shadow_day(self, proposal_id: str, day: Any, record: str, seq: int) -> None:
        self.con.execute(
            "INSERT INTO gov.shadow_days VALUES (?, ?, ?, ?)", [proposal_id, day, record, seq]
        )

    def shadow_day_rows(self, proposal_id: str | None = None) -> list[tuple]:
        where, args = ("WHERE proposal_id = ?", [proposal_id]) if proposal_id else ("", [])
        return self.con.execute(
            f"SELECT proposal_id, day, record, audit_seq FROM gov.shadow_days {where} "
            "ORDER BY proposal_id, day",
            args,
        ).fetchall()

    def insert_shadow_accounts(
        self, proposal_id: str, from_day: Any, sha256: str, positions: str, seq: int
    ) -> None:
        self.con.execute(
            "INSERT INTO gov.shadow_accounts VALUES (?, ?, ?, ?, ?)",
            [proposal_id, from_day, sha256, positions, seq],
        )

    def shadow_account_rows(self, proposal_id: str | None = None) -> list[tuple]:
        where, args = ("WHERE proposal_id = ?", [proposal_id]) if proposal_id else ("", [])
        return self.con.execute(
            f"SELECT proposal_id, from_day, sha256, positions, audit_seq FROM gov.shadow_accounts "
            f"{where} ORDER BY proposal_id, from_day",
            args,
        ).fetchall()

    # ------------------------------------------------------------------ documents
    def store_set(self, parameter_set: ParameterSet, origin: str, now: datetime) -> None:
        self.con.execute(
            "INSERT INTO gov.parameter_sets SELECT ?, ?, ?, ? WHERE NOT EXISTS "
            "(SELECT 1 FROM gov.parameter_sets WHERE fingerprint = ?)",
            [
                parameter_set.fingerprint,
                parameter_set.canonical_json(),
                now,
                origin,
                parameter_set.fingerprint,
            ],
        )

    def store_policy(self, policy: Policy, now: datetime) -> None:
        self.con.execute(
            "INSERT INTO gov.policies SELECT ?, ?, ? WHERE NOT EXISTS "
            "(SELECT 1 FROM gov.policies WHERE fingerprint = ?)",
            [
                policy.fingerprint,
                json.dumps(policy.model_dump(mode="json"), sort_keys=True),
                now,
                policy.fingerprint,
            ],
        )

    def set_documents(self, prefix: str) -> list[tuple[str, str]]:
        """(fingerprint, document) of the parameter sets whose fingerprint starts ``prefix``."""
        return self.con.execute(
            "SELECT fingerprint, document FROM gov.parameter_sets WHERE fingerprint LIKE ? || '%'",
            [prefix],
        ).fetchall()

    def policy_document(self, fingerprint: str) -> str | None:
        row = self.con.execute(
            "SELECT document FROM gov.policies WHERE fingerprint = ?", [fingerprint]
        ).fetchone()
        return None if row is None else row[0]

    def documents(self, table: str) -> list[tuple[str, str]]:
        """Every (fingerprint, document) of ``gov.parameter_sets`` or ``gov.policies``."""
        if table not in ("parameter_sets", "policies"):
            raise ValueError(f"{table}: not a document table")
        return self.con.execute(f"SELECT fingerprint, document FROM gov.{table}").fetchall()

    # ------------------------------------------------------------------ activations
    def activation_count(self) -> int:
        return int(self._scalar("SELECT count(*) FROM gov.activations"))

    def activation_rows(self) -> list[tuple]:
        return self.con.execute(
            f"SELECT {_ACTIVATION_COLUMNS} FROM gov.activations ORDER BY seq"
        ).fetchall()

    def last_activation_row(self) -> tuple | None:
        return self.con.execute(
            f"SELECT {_ACTIVATION_COLUMNS} FROM gov.activations ORDER BY seq DESC LIMIT 1"
        ).fetchone()

    def activation_row_at(self, at: datetime) -> tuple | None:
        return self.con.execute(
            f"SELECT {_ACTIVATION_COLUMNS} FROM gov.activations WHERE effective_from <= ? "
            "ORDER BY effective_from DESC, seq DESC LIMIT 1",
            [at],
        ).fetchone()

    def insert_activation(
        self,
        parameter_set: str,
        policy: str,
        effective_from: datetime,
        proposal_id: str | None,
        now: datetime,
        audit_seq: int,
    ) -> int:
        """Append an activation row; its sequence number."""
        seq = self._scalar("SELECT coalesce(max(seq), 0) + 1 FROM gov.activations")
        self.con.execute(
            "INSERT INTO gov.activations VALUES (?, ?, ?, ?, ?, ?, ?)",
            [seq, parameter_set, policy, effective_from, proposal_id, now, audit_seq],
        )
        return int(seq)

    def was_active(self, fingerprint: str) -> bool:
        count = self._scalar(
            "SELECT count(*) FROM gov.activations WHERE parameter_set = ?", [fingerprint]
        )
        return int(count) > 0

    # ------------------------------------------------------------------ proposals
    def proposal_ids(self, fingerprint_prefix: str) -> list[str]:
        rows = self.con.execute(
            "SELECT proposal_id FROM gov.proposals WHERE fingerprint LIKE ? || '%'",
            [fingerprint_prefix],
        ).fetchall()
        return [r[0] for r in rows]

    def proposal_row(self, proposal_id: str) -> tuple:
        """document, base set, proposed set, policy, status, created, effective, fingerprint."""
        row = self.con.execute(
            "SELECT document, base_set, proposed_set, policy_fingerprint, status, created_at, "
            "effective_from, fingerprint FROM gov.proposals WHERE proposal_id = ?",
            [proposal_id],
        ).fetchone()
        if row is None:
            raise KeyError(proposal_id)
        return row

    def proposal_list(self, status: Status | None = None) -> list[tuple]:
        value = status.value if status is not None else None
        return self.con.execute(
            f"SELECT {_PROPOSAL_LIST_COLUMNS} FROM gov.proposals WHERE ? IS NULL OR status = ? "
            "ORDER BY created_at, proposal_id",
            [value, value],
        ).fetchall()

    def proposal_rows(self) -> list[tuple]:
        """Every proposal row with its stored document, by id."""
        return self.con.execute(
            f"SELECT {_PROPOSAL_FULL_COLUMNS} FROM gov.proposals ORDER BY proposal_id"
        ).fetchall()

    def insert_proposal(self, values: list[Any]) -> None:
        self.con.execute(
            "INSERT INTO gov.proposals VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            values,
        )

    def status(self, proposal_id: str) -> str | None:
        row = self.con.execute(
            "SELECT status FROM gov.proposals WHERE proposal_id = ?", [proposal_id]
        ).fetchone()
        return None if row is None else row[0]

    def statuses(self) -> dict[str, str]:
        return dict(self.con.execute("SELECT proposal_id, status FROM gov.proposals").fetchall())

    def set_status(self, proposal_id: str, status: Status, now: datetime, **columns: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self.con.execute(
            f"UPDATE gov.proposals SET status = ?, updated_at = ?{', ' + assignments if columns else ''} "
            "WHERE proposal_id = ?",
            [status.value, now, *columns.values(), proposal_id],
        )

    # ------------------------------------------------------------------ votes
    def votes(self, proposal_id: str) -> list[tuple]:
        """member, decision, signature, reason, time of each vote on ``proposal_id``."""
        return self.con.execute(
            "SELECT member, decision, signature, reason, voted_at FROM gov.approvals "
            "WHERE proposal_id = ? ORDER BY voted_at",
            [proposal_id],
        ).fetchall()

    def vote_members(self) -> list[tuple[str, str, str]]:
        """proposal, member, decision of every vote, in time order."""
        return self.con.execute(
            "SELECT proposal_id, member, decision FROM gov.approvals ORDER BY voted_at"
        ).fetchall()

    def vote_rows(self) -> list[tuple]:
        """Every vote row as the audit log records it."""
        return self.con.execute(
            "SELECT proposal_id, member, decision, signature, reason, voted_at, audit_seq "
            "FROM gov.approvals"
        ).fetchall()

    def insert_vote(
        self,
        proposal_id: str,
        member: str,
        decision: str,
        signature: str,
        reason: str,
        now: datetime,
        audit_seq: int,
    ) -> None:
        self.con.execute(
            "INSERT INTO gov.approvals VALUES (?, ?, ?, ?, ?, ?, ?)",
            [proposal_id, member, decision, signature, reason, now, audit_seq],
        )
