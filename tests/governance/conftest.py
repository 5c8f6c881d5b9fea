"""A three-member committee with fixed keys, a policy and an initialised registry."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from governance.parameters import default_parameter_set
from governance.policy import DEFAULT_POLICY_DOCUMENT, Policy, parse_policy
from governance.registry import Registry
from governance.signing import public_key_b64
from pipelines.warehouse import connect

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MEMBERS = ("alice", "bob", "carol")


def member_key(name: str) -> Ed25519PrivateKey:
    """Deterministic keys so that failures reproduce; never do this outside tests."""
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"test-key:{name}".encode()).digest()
    )


def make_policy(**overrides) -> Policy:
    document = copy.deepcopy(DEFAULT_POLICY_DOCUMENT)
    document["committee"] = [
        {"name": n, "public_key": public_key_b64(member_key(n))} for n in MEMBERS
    ]
    document.update(overrides)
    return parse_policy(document)


@pytest.fixture
def keys() -> dict[str, Ed25519PrivateKey]:
    return {n: member_key(n) for n in (*MEMBERS, "mallory")}


@pytest.fixture
def policy() -> Policy:
    return make_policy()


@pytest.fixture
def registry(tmp_path, policy) -> Registry:
    con = connect(tmp_path / "warehouse.duckdb")
    registry = Registry(con)
    registry.initialise(default_parameter_set(), policy, actor="admin", now=T0)
    yield registry
    con.close()
