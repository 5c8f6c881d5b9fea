"""The governance command line end to end, as a committee would use it (issue 5 §7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml
from helpers import run_mwb

from governance.parameters import default_parameter_set, load_parameter_set

MEMBERS = ("alice", "bob", "carol")


def _json(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def committee_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Keys made with `mwb keygen`, a policy from `mwb policy template`, adopted by `mwb params
    init` — built once per module; each test works on its own copy."""
    home = tmp_path_factory.mktemp("committee") / "mwb-home"
    keys, members = {}, []
    for name in (*MEMBERS, "mallory"):
        made = _json(run_mwb("keygen", name, "--json", home=home))
        key = Path(made["private_key_file"])
        assert key.stat().st_mode & 0o777 == 0o600
        keys[name] = key.relative_to(home).as_posix()
        if name != "mallory":
            members += ["--member", f"{name}={made['public_key']}"]
    template = run_mwb("policy", "template", *members, home=home)
    assert template.returncode == 0, template.stderr
    policy = yaml.safe_load(template.stdout)
    policy["cooldown_days"] = 0
    (home / "policy.yaml").write_text(yaml.safe_dump(policy))
    _json(run_mwb("params", "init", "--json", home=home))
    return home, keys


@pytest.fixture
def committee(committee_home, home: Path) -> dict[str, Path]:
    """The committee's home copied into this test's ``home`` (keys keep their 0600 mode)."""
    template, keys = committee_home
    shutil.copytree(template, home)
    return {name: home / relative for name, relative in keys.items()}


def _proposal(
    tmp_path: Path, name: str, changes: dict, title: str = "Lower the ETH haircut"
) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "title": title,
                "author": "risk-team",
                "motivation": "ETH vol fell",
                "changes": changes,
            }
        )
    )
    return path


def _propose(tmp_path: Path, home: Path, changes: dict, **kwargs) -> dict:
    return _json(
        run_mwb("propose", str(_proposal(tmp_path, "p", changes, **kwargs)), "--json", home=home)
    )


def _approve(home: Path, committee: dict[str, Path], pid: str, *members: str) -> dict:
    for member in members:
        result = _json(
            run_mwb("approve", pid, "--key", str(committee[member]), "--json", home=home)
        )
    return result


def _warehouse(home: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(home / "warehouse.duckdb"))


def test_before_init_show_is_the_default_and_init_needs_a_committee(home: Path) -> None:
    shown = _json(run_mwb("params", "show", "--json", home=home))
    assert shown["fingerprint"] == default_parameter_set().fingerprint
    assert "not initialised" in shown["source"]
    result = run_mwb("params", "init", home=home)
    assert result.returncode == 2
    assert "committee has 0 member(s) and its quorum is 2" in result.stderr


def test_keygen_never_overwrites_a_key(home: Path) -> None:
    assert run_mwb("keygen", "alice", home=home).returncode == 0
    again = run_mwb("keygen", "alice", home=home)
    assert again.returncode == 2 and "never overwritten" in again.stderr
    assert run_mwb("keygen", "bad name!", home=home).returncode == 2


def test_out_of_bound_proposal_is_refused_and_only_the_refusal_recorded(
    tmp_path, home, committee
) -> None:
    path = _proposal(tmp_path, "big", {"collateral.ETH.haircut": 0.62})
    result = run_mwb("propose", str(path), home=home)
    assert result.returncode == 3
    assert (
        "collateral.ETH.haircut = 0.62 is above the maximum 0.5 (collateral.*.haircut)"
        in result.stderr
    )
    with _warehouse(home) as con:
        assert con.execute("SELECT count(*) FROM gov.proposals").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM gov.parameter_sets").fetchone()[0] == 1
        assert con.execute("SELECT action FROM gov.audit_log ORDER BY seq").fetchall() == [
            ("initialised",),
            ("proposal_refused",),
        ]
    bad_schema = tmp_path / "bad.yaml"
    bad_schema.write_text("title: x\nauthor: y\nchanges: {collateral.ETH.haircut: 0.08}\n")
    result = run_mwb("propose", str(bad_schema), home=home)
    assert result.returncode == 2 and "bad.yaml: motivation: Field required" in result.stderr


def test_propose_approve_enact_and_audit(tmp_path, home, committee) -> None:
    submitted = _propose(tmp_path, home, {"collateral.ETH.haircut": 0.08})
    pid = submitted["id"]
    assert submitted["changes"] == [{"path": "collateral.ETH.haircut", "old": 0.1, "new": 0.08}]

    # a non-member's key is refused, and enacting below the quorum is refused; both audited
    refused = run_mwb("approve", pid, "--key", str(committee["mallory"]), home=home)
    assert refused.returncode == 3 and "is not a member of the committee" in refused.stderr
    _approve(home, committee, pid, "alice")
    refused = run_mwb("enact", pid, home=home)
    assert refused.returncode == 3 and "not approved" in refused.stderr

    # bob signs offline; the signature is recorded without his key on this machine
    signature = run_mwb(
        "sign", submitted["fingerprint"], "--key", str(committee["bob"]), home=home
    ).stdout.strip()
    approved = _json(
        run_mwb(
            "approve", pid[:8], "--member", "bob", "--signature", signature, "--json", home=home
        )
    )
    assert approved["status"] == "approved"
    enacted = _json(run_mwb("enact", pid, "--json", home=home))
    assert enacted["status"] == "enacted"

    shown = _json(run_mwb("params", "show", "--json", home=home))
    assert shown["fingerprint"] == submitted["proposed_set"] and shown["proposal_id"] == pid
    assert shown["document"]["collateral"]["ETH"]["haircut"] == 0.08
    diff = _json(run_mwb("params", "diff", "default", "active", "--json", home=home))
    assert diff["changes"] == [{"path": "collateral.ETH.haircut", "old": 0.1, "new": 0.08}]
    export = tmp_path / "active.yaml"
    assert run_mwb("params", "export", "-o", str(export), home=home).returncode == 0
    assert load_parameter_set(export).fingerprint == submitted["proposed_set"]

    listed = _json(run_mwb("proposals", "--json", home=home))
    (record,) = listed["proposals"]
    assert record["status"] == "enacted" and record["approvals"] == ["alice", "bob"]

    log = _json(run_mwb("audit", "log", "--limit", "0", "--json", home=home))
    assert [e["action"] for e in log] == [
        "initialised",
        "submitted",
        "approve_refused",
        "approved",
        "enact_refused",
        "approved",
        "enacted",
    ]
    verified = run_mwb(
        "audit", "verify", "--expect-head", enacted["audit_head"]["hash"][:16], home=home
    )
    assert verified.returncode == 0 and "audit log verifies: 7 entries" in verified.stdout


def test_reject_needs_a_reason_and_closes_the_vote(tmp_path, home, committee) -> None:
    pid = _propose(tmp_path, home, {"collateral.BTC.haircut": 0.07})["id"]
    assert (
        run_mwb("reject", pid, "--key", str(committee["alice"]), home=home).returncode == 2
    )  # --reason missing
    for member in ("alice", "bob"):
        result = _json(
            run_mwb(
                "reject",
                pid,
                "--key",
                str(committee[member]),
                "--reason",
                "premature",
                "--json",
                home=home,
            )
        )
    assert result["status"] == "rejected"
    assert [v["reason"] for v in result["votes"]] == ["premature", "premature"]
    late = run_mwb("approve", pid, "--key", str(committee["carol"]), home=home)
    assert late.returncode == 3 and "rejected; votes are closed" in late.stderr


@pytest.mark.parametrize(
    ("sql", "first_bad"),
    [
        ("UPDATE gov.audit_log SET details = json_object('decision', 'reject') WHERE seq = 3", 3),
        ("DELETE FROM gov.audit_log WHERE seq = 2", 3),
        ("UPDATE gov.audit_log SET seq = CASE seq WHEN 3 THEN 4 ELSE 3 END WHERE seq IN (3, 4)", 3),
    ],
    ids=["edit", "delete", "reorder"],
)
def test_audit_verify_fails_naming_the_first_bad_entry(
    tmp_path, home, committee, sql, first_bad
) -> None:
    pid = _propose(tmp_path, home, {"collateral.ETH.haircut": 0.08})["id"]
    _approve(home, committee, pid, "alice", "bob")
    assert run_mwb("audit", "verify", home=home).returncode == 0
    with _warehouse(home) as con:
        con.execute(sql)
    result = run_mwb("audit", "verify", home=home)
    assert result.returncode == 4
    assert f"first bad entry {first_bad}:" in result.stderr
    report = json.loads(run_mwb("audit", "verify", "--json", home=home).stdout)
    assert report["ok"] is False and report["first_bad"] == first_bad
    # and nothing is enacted on top of a broken history
    refused = run_mwb("enact", pid, home=home)
    assert refused.returncode == 3 and "audit log does not verify" in refused.stderr


def test_margin_uses_the_set_in_force(tmp_path, home, committee, shared_data) -> None:
    """Without --params, `mwb margin` margins with the registry's set, and says so."""
    positions = tmp_path / "positions.csv"
    positions.write_text("account,instrument,quantity\nfut,BTC-PERPETUAL,-100000\n")
    chain = shared_data / "options/deribit_options_snapshot_20260330T051423Z.csv"
    args = (
        "margin",
        "--positions",
        str(positions),
        "--market",
        str(chain),
        "--model",
        "deribit-pm",
        "--json",
    )
    before = _json(run_mwb(*args, home=home))
    assert before["params_fingerprint"] == default_parameter_set().fingerprint
    assert before["params_source"].startswith("registry")
    pid = _propose(
        tmp_path, home, {"underlyings.BTC.pm.price_range": 0.14}, title="Narrow the BTC price range"
    )["id"]
    _approve(home, committee, pid, "alice", "bob")
    enacted = _json(run_mwb("enact", pid, "--json", home=home))
    after = _json(run_mwb(*args, home=home))
    assert after["params_fingerprint"] == enacted["proposed_set"]
    (account_before,), (account_after,) = before["accounts"], after["accounts"]
    # a short inverse perpetual's worst case is the +r move, losing Q/S · r/(1+r) coin
    ratio = account_after["components"]["worst_case"] / account_before["components"]["worst_case"]
    assert ratio == pytest.approx((0.14 / 1.14) / (0.16 / 1.16), rel=1e-9)
