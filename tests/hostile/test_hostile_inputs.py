"""Hostile and clumsy input, table-driven (issue 13, "Must show").

Every case runs the real command line in a subprocess against one warehouse with a committee,
a submitted proposal and a little market data. Each asserts the exit code, exactly one line on
stderr naming the problem, no traceback, and what the warehouse looks like afterwards:
``same`` — every table's rows and the audit head unchanged; ``refusal`` — the state tables
unchanged and exactly one audited refusal appended (refusals are recorded by design); ``any`` —
the command did its partial job (rejected rows kept with their reasons), still in one piece.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml
from helpers import OPTION_HEADER, OPTION_ROW, REPO

SAME, REFUSAL, ANY = "same", "refusal", "any"


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    code: int
    fragment: str
    effect: str = SAME
    env: tuple[tuple[str, str], ...] = ()


def _run(args, home: Path, env: dict | None = None, timeout: float = 60):
    full = {**os.environ, "MWB_HOME": str(home), **(env or {})}
    full.pop("MWB_DEBUG", None)
    if env is None or "MWB_CONFIG" not in env:
        full.pop("MWB_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        cwd=REPO,
    )


def _ok(result) -> dict | str:
    assert result.returncode == 0, result.stderr
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        return result.stdout


def _variants(text: str) -> list[str]:
    """The four base64 spellings of one 32-byte key (the last character's two spare bits)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(text[-2])
    return [text[:-2] + alphabet[(last & ~3) | k] + "=" for k in range(4)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    home, files = root / "home", root / "files"
    files.mkdir()
    keys = {}
    for name in ("alice", "bob", "carol", "mallory"):
        keys[name] = _ok(_run(["keygen", name, "--json"], home))["public_key"]
    members = [f"--member={n}={keys[n]}" for n in ("alice", "bob", "carol")]
    (home / "policy.yaml").write_text(_ok(_run(["policy", "template", *members], home)))
    _ok(_run(["params", "init", "--json"], home))
    proposal = files / "p.yaml"
    proposal.write_text(
        yaml.safe_dump(
            {
                "title": "Lower the ETH haircut",
                "author": "risk",
                "motivation": "ETH vol fell",
                "changes": {"collateral.ETH.haircut": 0.09},
            }
        )
    )
    submitted = _ok(_run(["propose", str(proposal), "--json"], home))
    # a little market data: BTC closes under `binance`, for the foreign-series case
    rows = ["date,asset,close"] + [f"2024-01-{d:02d},BTC,{40000 + 100 * d}" for d in range(1, 21)]
    (files / "btc.csv").write_text("\n".join(rows) + "\n")
    _ok(_run(["ingest", str(files / "btc.csv"), "--source", "binance", "--json"], home))
    _make_files(files, keys, submitted["fingerprint"])
    signature = _ok(
        _run(["sign", submitted["fingerprint"], "--key", str(home / "keys" / "alice.pem")], home)
    ).strip()
    return {
        "home": home,
        "files": files,
        "id": submitted["id"],
        "fingerprint": submitted["fingerprint"],
        "keys": keys,
        "signature": signature,
    }


def _laughs() -> str:
    text = (
        "title: x\nauthor: y\nmotivation: z\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    )
    previous = "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
        previous = name
    return text


def _proposal(changes=None, **extra) -> str:
    document = {"title": "x", "author": "y", "motivation": "z", **extra}
    if changes is not None:
        document["changes"] = changes
    return yaml.safe_dump(document)


def _make_files(f: Path, keys: dict, fingerprint: str) -> None:
    rng = hashlib.sha256(b"hostile").digest() * 200
    (f / "binary.csv").write_bytes(rng)
    (f / "binary.yaml").write_bytes(rng)
    (f / "binary.json").write_bytes(rng)
    (f / "empty.csv").write_text("")
    (f / "dir.csv").mkdir()
    (f / "dir.yaml").mkdir()
    (f / "dir.json").mkdir()
    os.mkfifo(f / "fifo.csv")
    os.mkfifo(f / "fifo.yaml")
    (f / "zero.csv").symlink_to("/dev/zero")
    (f / "zero.yaml").symlink_to("/dev/zero")
    (f / "dirlink.csv").symlink_to(f / "dir.csv")
    (f / "deep.json").write_text("[" * 20000 + "]" * 20000)
    (f / "deep_dvol_btc.json").write_text(
        json.dumps({"result": {"data": []}}).replace("[]", "[" * 50 + "]" * 50)
    )
    (f / "bad.csv.gz").write_bytes(b"\x1f\x8b garbage")
    (f / "bad.parquet").write_bytes(b"PAR1 garbage PAR1")
    (f / "header_only.csv").write_text("what,is,this\n1,2,3\n")
    (f / "nul.csv").write_bytes(b"date,asset,close\n2024-01-01,BTC,1\x00\n")
    (f / "notpages_btc.json").write_text("[1, 2, 3]")
    (f / "error_btc.json").write_text(json.dumps({"error": {"code": 10000, "message": "bad"}}))
    (f / "volatility.json").write_text(
        json.dumps({"result": {"data": [[1704067200000, 1, 1, 1, 1]]}})
    )
    (f / "BTCUSDT-x.csv").write_text("1,2,3,4,5,6,7,8,9,10,11\n")
    (f / "klines.csv").write_text("1704067200000,1,2,0.5,1,10,1704153599999,10,5,5,5,0\n")
    hourly = [[1704067200000 + k * 3_600_000, 50, 51, 49, 50] for k in range(72)]
    (f / "dvol_btc_hourly.json").write_text(json.dumps({"result": {"data": hourly}}))
    snapshots = ["date,asset,iv"] + [
        f"2024-01-{d:02d},BTC,{0.5 + 0.01 * h}" for d in range(1, 6) for h in range(24)
    ]
    (f / "iv_snapshots.csv").write_text("\n".join(snapshots) + "\n")
    usd = ["date,asset,close"] + [
        f"2024-01-{d:02d},BTC,{(40000 + 100 * d) * 1.003}" for d in range(1, 21)
    ]
    (f / "btc_usd.csv").write_text("\n".join(usd) + "\n")
    (f / "implausible.csv").write_text(
        "date,asset,close\n1900-01-01,BTC,1\n2099-01-01,BTC,3\n2024-02-01,BTC,1e300\n2024-02-02,BTC,2\n"
    )
    bars = [[1e20, 1, 1, 1, 1], [1706745600000, 50, 51, 49, 50]]
    (f / "dvol_btc_bigts.json").write_text(json.dumps({"result": {"data": bars}}))
    header, row = OPTION_HEADER, OPTION_ROW
    (f / "options.csv").write_text(
        "\n".join(
            [
                header,
                row.format(name="GARBAGE-NAME"),
                row.format(name="BTC-29MAY24-90000-C"),
                row.format(name="ETH-29MAY24-85000-C"),
                row.format(name="BTC-29MAY24-85000-P"),
            ]
        )
        + "\n"
    )
    texts = {
        "laughs.yaml": _laughs(),
        "cycle.yaml": "title: &t [x, *t]\nauthor: y\nmotivation: z\n",
        "deep.yaml": "a: " + "[" * 20000 + "]" * 20000 + "\n",
        "dupkey.yaml": "title: a\ntitle: b\nauthor: y\nmotivation: z\nchanges: {collateral.ETH.haircut: 0.09}\n",
        "syntax.yaml": "title: [a\nauthor: y\n",
        "list.yaml": "- a\n- b\n",
        "big.yaml": "title: x\nauthor: y\nmotivation: '" + "x" * 1_100_000 + "'\n",
        "unknown_field.yaml": _proposal({"collateral.ETH.haircut": 0.09}, titel="typo"),
        "bad_kind.yaml": _proposal({"collateral.ETH.haircut": 0.09}, kind="bogus"),
        "long_title.yaml": yaml.safe_dump(
            {
                "title": "x" * 300,
                "author": "y",
                "motivation": "z",
                "changes": {"collateral.ETH.haircut": 0.09},
            }
        ),
        "long_motivation.yaml": yaml.safe_dump(
            {
                "title": "x",
                "author": "y",
                "motivation": "m" * 25_000,
                "changes": {"collateral.ETH.haircut": 0.09},
            }
        ),
        "malformed_path.yaml": _proposal({"underlyings..pm": 0.1}),
        "unknown_path.yaml": _proposal({"nope.nope": 0.1}),
        "out_of_bounds.yaml": _proposal({"collateral.ETH.haircut": 0.9}),
        "nan.yaml": "title: x\nauthor: y\nmotivation: z\nchanges: {collateral.ETH.haircut: .nan}\n",
        "string_value.yaml": _proposal({"collateral.ETH.haircut": "lots"}),
        "no_change.yaml": _proposal({"collateral.ETH.haircut": 0.10}),
        "rollback_unknown.yaml": _proposal(None, kind="rollback", rollback_to="f" * 64),
        "same_key_twice.yaml": _policy_proposal(keys, [keys["alice"], keys["alice"]]),
        "key_spellings.yaml": _policy_proposal(keys, _variants(keys["alice"])[:2]),
        "non_canonical_key.yaml": _policy_proposal(
            keys, [next(v for v in _variants(keys["alice"]) if v != keys["alice"]), keys["bob"]]
        ),
        "config_dupkey.yaml": "market:\n  assets: [BTC]\nmarket:\n  assets: [ETH]\n",
        "dup_policy.yaml": yaml.safe_dump(
            {
                "committee": [
                    {"name": "a", "public_key": keys["alice"]},
                    {"name": "b", "public_key": keys["alice"]},
                ],
                "quorum": 2,
            }
        ),
        "config_syntax.yaml": "market: {assets: [BTC\n",
        "config_laughs.yaml": _laughs().replace("title: x\nauthor: y\nmotivation: z\n", ""),
        "market_deep.json": '{"as_of": "2024-01-01T00:00:00Z", "index": '
        + "[" * 5000
        + "]" * 5000
        + "}",
        "market_bad.json": '{"as_of": "not a time", "index": {"BTC": 1}}',
        "positions_bad.csv": "account,instrument,quantity\na,NOT-AN-INSTRUMENT,1\n",
    }
    for name, text in texts.items():
        (f / name).write_text(text)


def _policy_proposal(keys: dict, committee_keys: list[str]) -> str:
    committee = [{"name": f"m{k}", "public_key": key} for k, key in enumerate(committee_keys)]
    return yaml.safe_dump(
        {
            "title": "Change the committee",
            "author": "y",
            "motivation": "z",
            "kind": "policy",
            "policy": {"committee": committee, "quorum": 2},
        }
    )


def _flip_signature(signature: str) -> str:
    """A second spelling of the same 64 signature bytes (the spare low bits of the last
    character before the padding)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = signature.rstrip("=")
    padding = signature[len(body) :]
    k = alphabet.index(body[-1])
    return body[:-1] + alphabet[k ^ 1] + padding


def _snapshot(home: Path) -> dict:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema IN ('market', 'gov', 'calib', 'bt', 'rpt', 'meta') ORDER BY 1"
            ).fetchall()
        ]
        out = {
            t: con.execute(f"SELECT count(*), coalesce(sum(hash(x)), 0) FROM {t} x").fetchone()
            for t in tables
        }
        out["head"] = con.execute(
            "SELECT seq, hash FROM gov.audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        out["last_action"] = con.execute(
            "SELECT action FROM gov.audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()[0]
        return out
    finally:
        con.close()


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


F, H = "{files}", "{home}"
P, FP, SIG = "{id}", "{fingerprint}", "{signature}"

CASES = [
    # ---------------------------------------------------------------- ingest
    Case("ingest-dir", ("ingest", F + "/dir.csv"), 2, "is a folder"),
    Case("ingest-binary", ("ingest", F + "/binary.csv"), 2, "not a readable UTF-8"),
    Case("ingest-empty", ("ingest", F + "/empty.csv"), 2, "empty"),
    Case("ingest-missing", ("ingest", F + "/missing.csv"), 2, "no such file"),
    Case("ingest-fifo", ("ingest", F + "/fifo.csv"), 2, "not a regular file"),
    Case("ingest-dev-zero", ("ingest", F + "/zero.csv"), 2, "not a regular file"),
    Case("ingest-dir-link", ("ingest", F + "/dirlink.csv"), 2, "is a folder"),
    Case("ingest-deep-json", ("ingest", F + "/deep.json"), 2, "nested"),
    Case("ingest-deep-dvol", ("ingest", F + "/deep_dvol_btc.json"), 2, "nested deeper"),
    Case("ingest-bad-gzip", ("ingest", F + "/bad.csv.gz"), 2, "bad.csv.gz"),
    Case("ingest-bad-parquet", ("ingest", F + "/bad.parquet"), 2, "Parquet"),
    Case("ingest-unknown-header", ("ingest", F + "/header_only.csv"), 2, "header_only.csv"),
    Case("ingest-nul", ("ingest", F + "/nul.csv"), 2, "nul.csv"),
    Case("ingest-json-not-pages", ("ingest", F + "/notpages_btc.json"), 2, "not a JSON object"),
    Case("ingest-dvol-error-reply", ("ingest", F + "/error_btc.json"), 2, "error reply"),
    Case("ingest-dvol-no-currency", ("ingest", F + "/volatility.json"), 2, "pass --asset"),
    Case(
        "ingest-klines-no-asset",
        ("ingest", F + "/klines.csv", "--format", "binance-klines"),
        2,
        "pass --asset",
    ),
    Case("ingest-klines-short", ("ingest", F + "/BTCUSDT-x.csv"), 2, "BTCUSDT-x.csv"),
    Case("ingest-dvol-hourly", ("ingest", F + "/dvol_btc_hourly.json"), 2, "several DVOL bars"),
    Case("ingest-iv-snapshots", ("ingest", F + "/iv_snapshots.csv"), 2, "several implied-vol"),
    Case(
        "ingest-foreign-series", ("ingest", F + "/btc_usd.csv", "--source", "binance"), 2, "--force"
    ),
    Case("ingest-wrong-kind", ("ingest", F + "/btc.csv", "--kind", "options"), 2, "btc.csv"),
    Case(
        "ingest-wrong-format", ("ingest", F + "/btc.csv", "--format", "deribit-dvol"), 2, "btc.csv"
    ),
    Case(
        "ingest-escape-source",
        ("ingest", F + "/btc.csv", "--source", "\x1b[31mevil"),
        2,
        "--source",
    ),
    Case("ingest-bad-asset-option", ("ingest", F + "/klines.csv", "--asset", "../x"), 2, "--asset"),
    Case("ingest-bad-kind-option", ("ingest", F + "/btc.csv", "--kind", "bogus"), 2, "--kind"),
    Case("ingest-implausible-rows", ("ingest", F + "/implausible.csv", "--json"), 0, "", ANY),
    Case("ingest-dvol-timestamps", ("ingest", F + "/dvol_btc_bigts.json", "--json"), 0, "", ANY),
    Case("ingest-garbage-options", ("ingest", F + "/options.csv", "--json"), 0, "", ANY),
    # ---------------------------------------------------------------- propose
    Case("propose-missing", ("propose", F + "/missing.yaml"), 2, "no such file"),
    Case("propose-dir", ("propose", F + "/dir.yaml"), 2, "directory"),
    Case("propose-binary", ("propose", F + "/binary.yaml"), 2, "binary"),
    Case("propose-fifo", ("propose", F + "/fifo.yaml"), 2, "not a regular file"),
    Case("propose-dev-zero", ("propose", F + "/zero.yaml"), 2, "not a regular file"),
    Case("propose-billion-laughs", ("propose", F + "/laughs.yaml"), 2, "aliases expand"),
    # an alias into its own node hung the expansion check (found by the replicate cases)
    Case(
        "propose-alias-cycle", ("propose", F + "/cycle.yaml"), 2, "refers to a node that contains"
    ),
    Case("propose-deep", ("propose", F + "/deep.yaml"), 2, "nested deeper"),
    Case("propose-duplicate-key", ("propose", F + "/dupkey.yaml"), 2, "duplicate key 'title'"),
    Case("propose-syntax", ("propose", F + "/syntax.yaml"), 2, "line 2, column"),
    Case("propose-list", ("propose", F + "/list.yaml"), 2, "mapping"),
    Case("propose-too-big", ("propose", F + "/big.yaml"), 2, "bytes"),
    Case("propose-unknown-field", ("propose", F + "/unknown_field.yaml"), 2, "titel"),
    Case("propose-bad-kind", ("propose", F + "/bad_kind.yaml"), 2, "kind"),
    Case("propose-long-title", ("propose", F + "/long_title.yaml"), 2, "title"),
    Case("propose-long-motivation", ("propose", F + "/long_motivation.yaml"), 2, "motivation"),
    Case(
        "propose-malformed-path",
        ("propose", F + "/malformed_path.yaml"),
        3,
        "underlyings..pm",
        REFUSAL,
    ),
    Case("propose-unknown-path", ("propose", F + "/unknown_path.yaml"), 3, "nope", REFUSAL),
    Case(
        "propose-out-of-bounds",
        ("propose", F + "/out_of_bounds.yaml"),
        3,
        "above the maximum",
        REFUSAL,
    ),
    Case("propose-nan", ("propose", F + "/nan.yaml"), 3, "haircut", REFUSAL),
    Case("propose-string-value", ("propose", F + "/string_value.yaml"), 3, "haircut", REFUSAL),
    Case("propose-no-change", ("propose", F + "/no_change.yaml"), 3, "changes nothing", REFUSAL),
    Case(
        "propose-rollback-unknown",
        ("propose", F + "/rollback_unknown.yaml"),
        3,
        "rollback_to",
        REFUSAL,
    ),
    Case(
        "propose-same-key-twice",
        ("propose", F + "/same_key_twice.yaml"),
        3,
        "one key, one seat",
        REFUSAL,
    ),
    Case("propose-key-spellings", ("propose", F + "/key_spellings.yaml"), 3, "canonical", REFUSAL),
    Case(
        "propose-non-canonical-key",
        ("propose", F + "/non_canonical_key.yaml"),
        3,
        "canonical",
        REFUSAL,
    ),
    Case("propose-already-recorded", ("propose", F + "/p.yaml"), 3, "already recorded", REFUSAL),
    Case("propose-bad-actor", ("propose", F + "/p.yaml", "--actor", "a\x07b"), 2, "--actor"),
    # ---------------------------------------------------------------- votes
    Case(
        "approve-unknown",
        ("approve", "P-zzzzzzzz", "--key", H + "/keys/alice.pem"),
        2,
        "no such proposal",
    ),
    Case("approve-short-id", ("approve", "P-a", "--key", H + "/keys/alice.pem"), 2, "P-a"),
    Case("approve-key-missing", ("approve", P, "--key", F + "/missing.pem"), 2, "no such key file"),
    Case("approve-key-dir", ("approve", P, "--key", F + "/dir.csv"), 2, "directory"),
    Case("approve-key-binary", ("approve", P, "--key", F + "/binary.csv"), 2, "not a PEM"),
    Case("approve-key-fifo", ("approve", P, "--key", F + "/fifo.csv"), 2, "not a regular file"),
    Case(
        "approve-non-member",
        ("approve", P, "--key", H + "/keys/mallory.pem"),
        3,
        "not a member",
        REFUSAL,
    ),
    Case(
        "approve-non-canonical-signature",
        ("approve", P, "--member", "alice", "--signature", "{flipped}"),
        3,
        "canonical",
        REFUSAL,
    ),
    Case(
        "approve-signature-bang",
        ("approve", P, "--member", "alice", "--signature", "{bang}"),
        3,
        "base64",
        REFUSAL,
    ),
    Case(
        "approve-signature-other",
        ("approve", P, "--member", "bob", "--signature", SIG),
        3,
        "not bob's",
        REFUSAL,
    ),
    Case(
        "approve-signature-empty",
        ("approve", P, "--member", "alice", "--signature", ""),
        3,
        "signature",
        REFUSAL,
    ),
    Case(
        "approve-signature-huge",
        ("approve", P, "--member", "alice", "--signature", "A" * 5000),
        2,
        "--signature",
    ),
    Case(
        "approve-unknown-member",
        ("approve", P, "--member", "zed", "--signature", SIG),
        3,
        "not a member",
        REFUSAL,
    ),
    Case("approve-member-only", ("approve", P, "--member", "alice"), 2, "--signature"),
    Case("reject-no-reason", ("reject", P, "--key", H + "/keys/alice.pem"), 2, "--reason"),
    Case(
        "reject-long-reason",
        ("reject", P, "--key", H + "/keys/alice.pem", "--reason", "r" * 3000),
        2,
        "--reason",
    ),
    Case(
        "sign-bad-decision",
        ("sign", FP, "--key", H + "/keys/alice.pem", "--decision", "bogus"),
        2,
        "--decision",
    ),
    Case("sign-short-fingerprint", ("sign", "abc", "--key", H + "/keys/alice.pem"), 2, "64 hex"),
    Case("sign-key-dir", ("sign", FP, "--key", F + "/dir.csv"), 2, "directory"),
    # ---------------------------------------------------------------- enact
    Case("enact-unknown", ("enact", "P-zzzzzzzz"), 2, "no such proposal"),
    Case("enact-not-approved", ("enact", P), 3, "not approved", REFUSAL),
    Case("enact-bad-time", ("enact", P, "--effective-from", "garbage"), 2, "--effective-from"),
    Case("enact-bad-actor", ("enact", P, "--actor", "x" * 100), 2, "--actor"),
    # ---------------------------------------------------------------- audit
    Case(
        "audit-head-not-hex",
        ("audit", "verify", "--expect-head", "xyzxyzxyzxyzxyzxyz"),
        2,
        "not a hex hash",
    ),
    Case("audit-head-short", ("audit", "verify", "--expect-head", "abcdef12"), 2, "16 to 64"),
    Case("audit-head-long", ("audit", "verify", "--expect-head", "a" * 65), 2, "16 to 64"),
    Case(
        "audit-head-unknown", ("audit", "verify", "--expect-head", "ab" * 32), 4, "published head"
    ),
    Case("audit-limit-negative", ("audit", "log", "--limit", "-5"), 2, "--limit"),
    Case("audit-limit-text", ("audit", "log", "--limit", "abc"), 2, "--limit"),
    # ---------------------------------------------------------------- sql
    Case("sql-copy", ("sql", "COPY market.prices TO '{files}/out.csv'"), 2, "COPY"),
    Case(
        "sql-copy-over-warehouse",
        ("sql", "COPY (SELECT 1) TO '{home}/warehouse.duckdb'"),
        2,
        "COPY",
    ),
    Case("sql-attach", ("sql", "ATTACH '{files}/other.db' AS other"), 2, "ATTACH"),
    Case("sql-install", ("sql", "INSTALL httpfs"), 2, "not allowed"),
    Case("sql-load", ("sql", "LOAD httpfs"), 2, "not allowed"),
    Case("sql-export", ("sql", "EXPORT DATABASE '{files}/export'"), 2, "EXPORT"),
    Case("sql-set", ("sql", "SET threads = 1"), 2, "SET"),
    Case("sql-pragma", ("sql", "PRAGMA version"), 2, "PRAGMA"),
    Case("sql-call", ("sql", "CALL pragma_version()"), 2, "CALL"),
    Case("sql-delete", ("sql", "DELETE FROM market.prices"), 2, "DELETE"),
    Case("sql-update", ("sql", "UPDATE gov.proposals SET title = 'x'"), 2, "UPDATE"),
    Case("sql-create", ("sql", "CREATE TABLE x AS SELECT 1"), 2, "CREATE"),
    Case("sql-drop", ("sql", "DROP TABLE market.prices"), 2, "DROP"),
    Case("sql-checkpoint", ("sql", "CHECKPOINT"), 2, "not allowed"),
    Case("sql-two-statements", ("sql", "SELECT 1; SELECT 2"), 2, "2 statements"),
    Case("sql-read-file", ("sql", "SELECT * FROM read_csv('/etc/passwd')"), 2, "disabled"),
    Case("sql-syntax", ("sql", "SELEC 1"), 2, "query failed"),
    Case("sql-empty", ("sql", ""), 2, "0 statements"),
    # ---------------------------------------------------------------- report
    Case("report-unknown", ("report", "P-zzzzzzzz"), 2, "no such proposal"),
    Case(
        "report-out-unwritable", ("report", P, "--out", "/proc/mwb-report"), 2, "/proc/mwb-report"
    ),
    Case("report-out-is-a-file", ("report", P, "--out", F + "/btc.csv"), 2, "not a folder"),
    Case("report-backtest-unknown", ("report", "--backtest", "bt-nope"), 2, "no such run"),
    Case("report-nothing", ("report",), 2, "exactly one"),
    Case("report-two-things", ("report", P, "--calibration"), 2, "exactly one"),
    # ---------------------------------------------------------------- run (the Dagster jobs)
    Case("run-backtest-missing", ("run", "backtest", F + "/missing.yaml"), 2, "no such file"),
    Case("run-backtest-binary", ("run", "backtest", F + "/binary.yaml"), 2, "binary"),
    Case("run-backtest-dir", ("run", "backtest", F + "/dir.yaml"), 2, "directory"),
    Case("run-backtest-laughs", ("run", "backtest", F + "/laughs.yaml"), 2, "aliases expand"),
    Case("run-backtest-syntax", ("run", "backtest", F + "/syntax.yaml"), 2, "line 2, column"),
    Case("run-backtest-unknown-id", ("run", "backtest", "P-zzzzzzzz"), 2, "no such proposal"),
    Case("run-enact-unknown", ("run", "enact", "P-zzzzzzzz"), 2, "no such proposal"),
    Case("run-daily-bad-day", ("run", "daily", "--day", "garbage"), 2, "--day"),
    Case(
        "run-backfill-reversed",
        ("run", "backfill", "--from", "2024-02-01", "--to", "2024-01-01"),
        2,
        "before",
    ),
    # ---------------------------------------------------------------- settings, warehouse, keys
    Case(
        "home-is-a-file", ("status",), 2, "MWB_HOME is a file", env=(("MWB_HOME", F + "/btc.csv"),)
    ),
    Case("config-binary", ("status",), 2, "binary", env=(("MWB_CONFIG", F + "/binary.yaml"),)),
    Case("config-dir", ("status",), 2, "directory", env=(("MWB_CONFIG", F + "/dir.yaml"),)),
    Case(
        "config-laughs",
        ("status",),
        2,
        "aliases expand",
        env=(("MWB_CONFIG", F + "/config_laughs.yaml"),),
    ),
    Case(
        "config-syntax",
        ("status",),
        2,
        "line 2, column",
        env=(("MWB_CONFIG", F + "/config_syntax.yaml"),),
    ),
    Case(
        "config-duplicate-key",
        ("status",),
        2,
        "duplicate key 'market'",
        env=(("MWB_CONFIG", F + "/config_dupkey.yaml"),),
    ),
    Case("config-missing", ("status",), 2, "not found", env=(("MWB_CONFIG", F + "/missing.yaml"),)),
    Case(
        "config-bad-override",
        ("status",),
        2,
        "MWB__market__assets",
        env=(("MWB__market__assets", "[BTC"),),
    ),
    Case(
        "warehouse-not-duckdb",
        ("status",),
        2,
        "not a usable DuckDB",
        env=(("MWB_HOME", F + "/fakehome"),),
    ),
    Case("keygen-dotdot", ("keygen", ".."), 2, "not starting with '.'"),
    Case("keygen-hidden", ("keygen", ".hidden"), 2, "not starting with '.'"),
    Case("keygen-slash", ("keygen", "a/b"), 2, "NAME"),
    Case("keygen-existing", ("keygen", "alice"), 2, "already exists"),
    Case("keygen-output-dir", ("keygen", "dave", "-o", F + "/dir.csv"), 2, "is a folder"),
    Case(
        "policy-template-same-key",
        ("policy", "template", "--member", "a={alice}", "--member", "b={alice}"),
        2,
        "one key, one seat",
    ),
    Case(
        "policy-template-spelling",
        ("policy", "template", "--member", "a={alice}", "--member", "b={alice_other_spelling}"),
        2,
        "canonical",
    ),
    Case(
        "policy-template-bad-member",
        ("policy", "template", "--member", "nokey"),
        2,
        "NAME=PUBLIC_KEY",
    ),
    Case(
        "params-init-same-key",
        ("params", "init", "--policy", F + "/dup_policy.yaml"),
        2,
        "one key, one seat",
    ),
    Case("params-diff-dir", ("params", "diff", "active", F + "/dir.yaml"), 2, "directory"),
    Case("params-diff-binary", ("params", "diff", "active", F + "/binary.yaml"), 2, "binary"),
    Case(
        "params-diff-unknown", ("params", "diff", "active", "nothing-like-this"), 2, "not 'active'"
    ),
    Case(
        "params-export-unwritable",
        ("params", "export", "-o", "/proc/mwb/x.yaml"),
        2,
        "cannot write",
    ),
    Case("params-show-bad-time", ("params", "show", "--at", "99999"), 2, "--at"),
    Case("params-show-unknown-set", ("params", "show", "--set", "ffffffffff"), 2, "no such set"),
    # ---------------------------------------------------------------- margin
    Case(
        "margin-positions-binary",
        (
            "margin",
            "--positions",
            F + "/binary.csv",
            "--as-of",
            "2024-01-05",
            "--model",
            "standard",
        ),
        2,
        "binary.csv",
    ),
    Case(
        "margin-positions-dir",
        ("margin", "--positions", F + "/dir.csv", "--as-of", "2024-01-05", "--model", "standard"),
        2,
        "is a folder",
    ),
    Case(
        "margin-positions-fifo",
        ("margin", "--positions", F + "/fifo.csv", "--as-of", "2024-01-05", "--model", "standard"),
        2,
        "not a regular file",
    ),
    Case(
        "margin-market-deep",
        (
            "margin",
            "--positions",
            F + "/positions_bad.csv",
            "--market",
            F + "/market_deep.json",
            "--model",
            "standard",
        ),
        2,
        "market_deep.json",
    ),
    Case(
        "margin-market-bad",
        (
            "margin",
            "--positions",
            F + "/positions_bad.csv",
            "--market",
            F + "/market_bad.json",
            "--model",
            "standard",
        ),
        2,
        "market_bad.json",
    ),
    Case(
        "margin-bad-model",
        (
            "margin",
            "--positions",
            F + "/positions_bad.csv",
            "--as-of",
            "2024-01-05",
            "--model",
            "bogus",
        ),
        2,
        "--model",
    ),
    Case(
        "margin-bad-day",
        (
            "margin",
            "--positions",
            F + "/positions_bad.csv",
            "--as-of",
            "yesterday-ish",
            "--model",
            "standard",
        ),
        2,
        "--as-of",
    ),
]


def _fill(text: str, world: dict) -> str:
    signature = world["signature"]
    other = next(v for v in _variants(world["keys"]["alice"]) if v != world["keys"]["alice"])
    return text.format(
        files=world["files"],
        home=world["home"],
        id=world["id"],
        fingerprint=world["fingerprint"],
        signature=signature,
        flipped=_flip_signature(signature),
        bang=signature[:10] + "!" + signature[10:],
        alice=world["keys"]["alice"],
        alice_other_spelling=other,
    )


def test_there_are_at_least_a_hundred_cases_across_the_commands() -> None:
    commands = {c.args[0] for c in CASES if c.args}
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)
    assert {"ingest", "propose", "approve", "enact", "audit", "sql", "report", "run"} <= commands


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(world, case: Case) -> None:
    home = world["home"]
    if case.id == "warehouse-not-duckdb":
        fake = world["files"] / "fakehome"
        fake.mkdir(exist_ok=True)
        (fake / "warehouse.duckdb").write_bytes(b"not a database at all" * 100)
    args = [_fill(a, world) for a in case.args]
    env = {k: _fill(v, world) for k, v in case.env}
    before = _snapshot(home)
    warehouse_sha = _file_sha(home / "warehouse.duckdb")
    result = _run(args, home, env)
    assert result.returncode == case.code, (result.stdout[-500:], result.stderr[-1500:])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if case.code != 0:
        assert len(lines) == 1, lines
        assert _fill(case.fragment, world) in lines[0], lines[0]
    after = _snapshot(home)
    if case.effect == SAME:
        assert after == before
        if args[0] == "sql":
            assert _file_sha(home / "warehouse.duckdb") == warehouse_sha
    elif case.effect == REFUSAL:
        state = {k: v for k, v in after.items() if k.startswith("gov.") and k != "gov.audit_log"}
        assert state == {
            k: v for k, v in before.items() if k.startswith("gov.") and k != "gov.audit_log"
        }
        assert after["head"][0] == before["head"][0] + 1
        assert after["last_action"].endswith("_refused")
        assert f"audit head: entry {after['head'][0]} {after['head'][1]}" in lines[0]
