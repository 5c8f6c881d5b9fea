"""The one parameter-set resolver: the same words mean the same set in every command."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.parameters import default_parameter_set
from governance.policy import DEFAULT_POLICY_DOCUMENT, Policy, parse_policy
from governance.registry import Registry
from governance.signing import public_key_b64
from pipelines.errors import BadInputError
from pipelines.params import DEFAULT_SOURCE, resolve_parameter_set
from pipelines.warehouse import connect

DEFAULT = default_parameter_set()
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def make_policy() -> Policy:
    document = copy.deepcopy(DEFAULT_POLICY_DOCUMENT)
    document["committee"] = [
        {
            "name": name,
            "public_key": public_key_b64(
                Ed25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest())
            ),
        }
        for name in ("alice", "bob", "carol")
    ]
    return parse_policy(document)


def test_without_a_registry_active_is_the_default(tmp_path) -> None:
    con = connect(tmp_path / "w.duckdb")
    try:
        for ref in (None, "active", "default"):
            found = resolve_parameter_set(con, ref)
            assert found.parameter_set.fingerprint == DEFAULT.fingerprint
            assert found.source == DEFAULT_SOURCE
        assert resolve_parameter_set(None).parameter_set.fingerprint == DEFAULT.fingerprint
    finally:
        con.close()


def test_files_fingerprints_and_the_set_in_force_at_a_time(tmp_path) -> None:
    con = connect(tmp_path / "w.duckdb")
    try:
        registry = Registry(con)
        registry.initialise(DEFAULT, make_policy(), actor="admin", now=T0)
        changed = DEFAULT.with_changes({"collateral.ETH.haircut": 0.2})
        path = tmp_path / "set.yaml"
        path.write_text(changed.canonical_json())
        from_file = resolve_parameter_set(con, path)
        assert from_file.parameter_set.fingerprint == changed.fingerprint
        assert from_file.source == f"file {path}"
        # any case, any prefix of six or more digits names the registry's set
        prefix = DEFAULT.fingerprint[:10].upper()
        assert resolve_parameter_set(con, prefix).parameter_set.fingerprint == DEFAULT.fingerprint
        before = resolve_parameter_set(con, None, at=T0 - timedelta(days=1))
        assert before.source == DEFAULT_SOURCE  # nothing in force yet: no look-ahead
        now = resolve_parameter_set(con, "active", at=T0 + timedelta(days=1))
        assert now.source.startswith("registry (in force at")
    finally:
        con.close()


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        # the venues' published sets are words it knows too
        ("nothing-like-this", "not 'active', 'default', 'derive', .*'aevo', an existing file"),
        ("abcdef0123", "no such set"),
    ],
)
def test_refusals_name_the_words_it_knows(tmp_path, ref: str, message: str) -> None:
    con = connect(tmp_path / "w.duckdb")
    try:
        Registry(con).initialise(DEFAULT, make_policy(), actor="admin", now=T0)
        with pytest.raises(BadInputError, match=message):
            resolve_parameter_set(con, ref)
        with pytest.raises(BadInputError, match="not 'registry', 'active'"):
            resolve_parameter_set(con, "nope", also=("registry",))
    finally:
        con.close()
