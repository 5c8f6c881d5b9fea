"""Governance commands: ``mwb params``, ``mwb policy``, ``mwb propose``, ``mwb proposals``,
``mwb keygen``, ``mwb sign``, ``mwb approve``, ``mwb reject``, ``mwb enact``, ``mwb audit``,
``mwb triggers``.

Exit codes beyond the usual (0 done, 1 internal, 2 bad input): **3** the governance rules
refused the step (the refusal is in the audit log), **4** the audit log or a stored document
does not verify.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml

from governance.audit import head_prefix
from governance.parameters import ABSENT, ParameterSet, diff
from governance.policy import Policy
from governance.proposals import ProposalError, load_proposal
from governance.registry import GovernanceError, Registry, TamperedError
from governance.signing import (
    Decision,
    KeyError_,
    generate_key,
    public_key_b64,
    public_key_bytes,
    read_private_key,
    sign,
    write_private_key,
)
from governance.workflow import ProposalState, Refusal, Status
from pipelines.cli.market import JSON_HELP, settings_from
from pipelines.cli.output import err, out, print_json, table
from pipelines.errors import BadInputError
from pipelines.files import regular_file, write_text
from pipelines.warehouse import connect
from reports.text import printable

REFUSED = 3
PAST = {"approve": "approved", "reject": "rejected"}
MAX_REASON_CHARS = 2_000
UNVERIFIED = 4

params_app = typer.Typer(help="Parameter sets: show, diff, export; initialise the registry.")
policy_app = typer.Typer(help="The governance policy in force.")
audit_app = typer.Typer(help="The hash-chained audit log.")

ACTOR_HELP = "Who is acting (default: $MWB_ACTOR or the login name); recorded in the audit log."


def _actor(actor: str | None) -> str:
    name = actor or os.environ.get("MWB_ACTOR") or getpass.getuser()
    if not (0 < len(name) <= 64 and name.isprintable()):
        raise BadInputError("--actor: 1-64 printable characters")
    return name


def _now() -> datetime:
    return datetime.now(UTC)


def _when(text: str | None, option: str) -> datetime | None:
    """An ISO date or date-time; naive values are UTC."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadInputError(f"{option}: {text!r} is not an ISO date or date-time") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@contextlib.contextmanager
def _registry(ctx: typer.Context) -> Iterator[Registry]:
    settings = settings_from(ctx)
    con = connect(settings.warehouse_path)
    try:
        yield Registry(con)
    except GovernanceError as exc:
        raise BadInputError(str(exc)) from exc
    except Refusal as refusal:
        # the refusal was appended to the log: its new head goes on the same one line
        head = _head_line(Registry(con))
        err.print(
            f"refused: {' '.join(str(refusal).split())} (audit head: entry {head['seq']} "
            f"{head['hash']})",
            soft_wrap=True,
        )
        raise typer.Exit(REFUSED) from refusal
    except TamperedError as exc:
        err.print(f"error: {' '.join(str(exc).split())}", soft_wrap=True)
        raise typer.Exit(UNVERIFIED) from exc
    finally:
        con.close()


def _head_line(registry: Registry) -> dict[str, Any]:
    entries = registry.audit_entries()
    head = entries[-1] if entries else None
    return {"seq": head.seq if head else 0, "hash": head.hash if head else None}


def _print_head(head: dict[str, Any]) -> None:
    if head["hash"]:
        out.print(
            f"audit head: entry {head['seq']} {head['hash']}  (publish it; `mwb audit verify --expect-head`)"
        )


def _value(value: Any) -> str:
    return "(absent)" if value is ABSENT else json.dumps(value)


def _changes_rows(changes) -> list[tuple[str, str, str]]:
    return [(c.path, _value(c.old), _value(c.new)) for c in changes]


# ---------------------------------------------------------------------------- params


def _resolve_set(registry: Registry, ref: str) -> tuple[str, ParameterSet]:
    """``active``, ``default``, a file, or a fingerprint (prefix) in the registry."""
    from pipelines.params import resolve_parameter_set

    resolved = resolve_parameter_set(registry.con, ref)
    return resolved.label, resolved.parameter_set


def _selected(
    registry: Registry, at: str | None, fingerprint: str | None
) -> tuple[ParameterSet, dict[str, Any]]:
    if fingerprint is not None:
        parameter_set = registry.parameter_set(fingerprint)
        return parameter_set, {"source": "registry"}
    if not registry.initialised():
        from governance.parameters import default_parameter_set

        return default_parameter_set(), {
            "source": "default (the registry is not initialised: `mwb params init`)"
        }
    when = _when(at, "--at")
    activation = registry.active_at(when) if when else registry.head()
    if activation is None:
        raise BadInputError(
            f"--at {at}: no parameter set was in force yet (the first took effect later)"
        )
    return registry.parameter_set(activation.parameter_set), {
        "source": "registry",
        "effective_from": activation.effective_from.isoformat(),
        "proposal_id": activation.proposal_id,
        "policy": activation.policy,
        "activation": activation.seq,
    }


@params_app.command("show")
def params_show(
    ctx: typer.Context,
    at: str | None = typer.Option(
        None, "--at", help="The set in force at this time (default: the latest)."
    ),
    fingerprint: str | None = typer.Option(None, "--set", help="A set by fingerprint (prefix)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The parameter set in force (or at --at, or by --set): every value by path."""
    with _registry(ctx) as registry:
        parameter_set, where = _selected(registry, at, fingerprint)
    if as_json:
        print_json(
            {
                "fingerprint": parameter_set.fingerprint,
                **where,
                "document": parameter_set.canonical_dict(),
            }
        )
        return
    out.print(f"parameter set {parameter_set.fingerprint}")
    for key, value in where.items():
        out.print(f"  {key}: {value}", markup=False)
    out.print(
        table(
            None, ["path", "value"], [(p, json.dumps(v)) for p, v in parameter_set.paths().items()]
        )
    )


@params_app.command("diff")
def params_diff(
    ctx: typer.Context,
    old: str = typer.Argument(..., help="'active', 'default', a file or a fingerprint."),
    new: str = typer.Argument(..., help="'active', 'default', a file or a fingerprint."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Leaf-by-leaf differences between two parameter sets."""
    with _registry(ctx) as registry:
        (old_name, a), (new_name, b) = _resolve_set(registry, old), _resolve_set(registry, new)
    changes = diff(a, b)
    if as_json:
        print_json(
            {
                "old": a.fingerprint,
                "new": b.fingerprint,
                "changes": [c.as_dict() for c in changes],
            }
        )
        return
    out.print(
        f"{old_name} ({a.fingerprint[:12]}) -> {new_name} ({b.fingerprint[:12]}): {len(changes)} change(s)"
    )
    if changes:
        out.print(table(None, ["path", "old", "new"], _changes_rows(changes)))


@params_app.command("export")
def params_export(
    ctx: typer.Context,
    at: str | None = typer.Option(
        None, "--at", help="The set in force at this time (default: the latest)."
    ),
    fingerprint: str | None = typer.Option(None, "--set", help="A set by fingerprint (prefix)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write here (default: stdout)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Canonical JSON instead of YAML."),
) -> None:
    """The document of a set, for `mwb margin --params` or as a starting point for a proposal."""
    with _registry(ctx) as registry:
        parameter_set, _ = _selected(registry, at, fingerprint)
    text = (
        parameter_set.canonical_json() + "\n"
        if as_json
        else f"# parameter set {parameter_set.fingerprint}\n"
        + yaml.safe_dump(parameter_set.canonical_dict(), sort_keys=True, width=100)
    )
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text(output, text)
        err.print(f"wrote {output} ({parameter_set.fingerprint[:12]})", markup=False)


@params_app.command("init")
def params_init(
    ctx: typer.Context,
    params: Path | None = typer.Option(
        None, "--params", help="Genesis set (default: Deribit's published values)."
    ),
    policy: Path | None = typer.Option(
        None, "--policy", help="Policy file (default: HOME/policy.yaml)."
    ),
    effective_from: str | None = typer.Option(
        None, "--effective-from", help="When the genesis set took effect."
    ),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Initialise the registry with a genesis parameter set and policy (once)."""
    from pipelines.governance import read_policy
    from pipelines.params import resolve_parameter_set

    settings = settings_from(ctx)
    genesis = resolve_parameter_set(None, params or "default").parameter_set
    adopted = read_policy(policy, settings)
    with _registry(ctx) as registry:
        activation = registry.initialise(
            genesis,
            adopted,
            actor=_actor(actor),
            now=_now(),
            effective_from=_when(effective_from, "--effective-from"),
        )
        head = _head_line(registry)
    payload = {
        "parameter_set": activation.parameter_set,
        "policy": activation.policy,
        "effective_from": activation.effective_from.isoformat(),
        "audit_head": head,
    }
    if as_json:
        print_json(payload)
        return
    out.print(
        f"initialised: parameter set {activation.parameter_set[:12]}, policy {activation.policy[:12]}, "
        f"committee {', '.join(m.name for m in adopted.committee)} (quorum {adopted.quorum})"
    )
    _print_head(head)


@policy_app.command("show")
def policy_show(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)
) -> None:
    """The policy in force: bounds, committee, quorum, cool-down, drift and rollback rules."""
    with _registry(ctx) as registry:
        policy = registry.policy()
    if as_json:
        print_json({"fingerprint": policy.fingerprint, "document": policy.model_dump(mode="json")})
        return
    _print_policy(policy)


@policy_app.command("template")
def policy_template(
    members: list[str] = typer.Option(
        [], "--member", help="NAME=PUBLIC_KEY as printed by `mwb keygen` (repeatable)."
    ),
    quorum: int | None = typer.Option(None, "--quorum", help="Approvals needed (default: 2)."),
) -> None:
    """Print a policy file with the default bounds and the given committee, to edit and adopt."""
    from governance.policy import DEFAULT_POLICY_DOCUMENT, PolicyError, parse_policy

    document = json.loads(json.dumps(DEFAULT_POLICY_DOCUMENT))
    committee = []
    for item in members:
        name, sep, public_key = item.partition("=")
        if not sep:
            raise BadInputError(f"--member {item!r}: expected NAME=PUBLIC_KEY")
        committee.append({"name": name.strip(), "public_key": public_key.strip()})
    document["committee"] = committee
    if quorum is not None:
        document["quorum"] = quorum
    try:
        parse_policy(document)
    except PolicyError as exc:
        raise BadInputError(f"--member/--quorum: {exc}") from exc
    typer.echo(
        "# Margin Workbench governance policy; adopt with `mwb params init --policy FILE`\n"
        + yaml.safe_dump(document, sort_keys=False, width=100),
        nl=False,
    )


def _print_policy(policy: Policy) -> None:
    out.print(f"policy {policy.fingerprint}")
    out.print(
        f"committee: {', '.join(m.name for m in policy.committee) or '(none)'} · quorum {policy.quorum} · "
        f"cool-down {policy.cooldown_days:g} days · rollback after more than {policy.rollback.max_breaches} "
        f"breaches in {policy.rollback.window_days} days"
    )
    rows = [
        (
            pattern,
            _fmt(b.min),
            _fmt(b.max),
            "-" if b.max_change is None else f"{b.max_change:g} {b.change}",
            _fmt(policy.drift_tolerance.get(pattern)),
        )
        for pattern, b in sorted(policy.bounds.items())
    ]
    out.print(table(None, ["parameter", "min", "max", "largest change", "drift tolerance"], rows))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


# ---------------------------------------------------------------------------- proposals


def propose(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Proposal YAML (title, author, motivation, changes …)."),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Validate a proposal against the schema and the policy, fingerprint it and submit it."""
    try:
        document = load_proposal(file)
    except ProposalError as exc:
        raise BadInputError(str(exc)) from exc
    with _registry(ctx) as registry:
        state = registry.submit(document, actor=_actor(actor), now=_now())
        head = _head_line(registry)
        quorum = registry.policy().quorum
    if as_json:
        print_json({**_state_payload(state), "audit_head": head})
        return
    out.print(f"submitted {state.id} — {document.title}")
    out.print(
        f"fingerprint {state.proposal.fingerprint} (members sign this; {quorum} approvals needed)"
    )
    out.print(table(None, ["path", "active", "proposed"], _changes_rows(state.changes)))
    _print_head(head)


def _state_payload(state: ProposalState) -> dict[str, Any]:
    proposal = state.proposal
    return {
        "id": state.id,
        "status": state.status.value,
        **proposal.summary(),
        "changes": [c.as_dict() for c in state.changes],
        "votes": [
            {"member": v.member, "decision": v.decision, "at": v.at.isoformat(), "reason": v.reason}
            for v in state.votes
        ],
        "effective_from": state.effective_from.isoformat() if state.effective_from else None,
        "document": proposal.document.model_dump(mode="json"),
    }


def proposals(
    ctx: typer.Context,
    proposal_id: str | None = typer.Argument(None, help="Show one proposal in full."),
    status: Status | None = typer.Option(None, "--status", help="Only proposals with this status."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Proposals with their status and votes, or one proposal in full."""
    with _registry(ctx) as registry:
        if proposal_id is not None:
            state = registry.state(proposal_id)
            quorum = registry.policy().quorum
            payload = _state_payload(state)
        else:
            records = registry.proposals(status) if registry.initialised() else []
            quorum = registry.policy().quorum if registry.initialised() else 0
    if proposal_id is not None:
        if as_json:
            print_json(payload)
            return
        _print_state(payload, quorum)
        return
    if as_json:
        print_json({"quorum": quorum, "proposals": [r.as_dict() for r in records]})
        return
    rows = [
        (
            r.proposal_id,
            r.status.value,
            r.kind,
            r.title,
            r.author,
            f"{len(r.approvals)}/{quorum}",
            len(r.rejections),
            f"{r.created_at:%Y-%m-%d %H:%M}",
            f"{r.effective_from:%Y-%m-%d %H:%M}" if r.effective_from else "",
        )
        for r in records
    ]
    out.print(
        table(
            None,
            [
                "id",
                "status",
                "kind",
                "title",
                "author",
                "approvals",
                "rejections",
                "created",
                "effective from",
            ],
            rows,
        )
    )


def _print_state(payload: dict[str, Any], quorum: int) -> None:
    document = payload["document"]
    out.print(f"{payload['id']} · {payload['status']} · {payload['kind']} — {payload['title']}")
    out.print(f"author {document['author']} · fingerprint {payload['fingerprint']}")
    out.print(
        f"set {payload['base_set'][:12]} -> {payload['proposed_set'][:12]} · policy {payload['policy'][:12]}"
    )
    out.print(document["motivation"].rstrip(), markup=False)
    if payload["changes"]:
        out.print(
            table(
                None,
                ["path", "active", "proposed"],
                [
                    (c["path"], json.dumps(c["old"]), json.dumps(c["new"]))
                    for c in payload["changes"]
                ],
            )
        )
    approvals = sum(v["decision"] == "approve" for v in payload["votes"])
    out.print(f"votes ({approvals}/{quorum} approvals):")
    for v in payload["votes"]:
        out.print(f"  {v['member']} {v['decision']} at {v['at']} {v['reason']}", markup=False)


# ---------------------------------------------------------------------------- keys and votes


def keygen(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Committee member name (letters, digits, . _ -)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Key file (default: HOME/keys/NAME.pem)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Make an Ed25519 key pair; print the public key to list in the policy's committee."""
    from governance.policy import Member
    from pipelines.governance import keys_dir

    try:
        Member(name=name, public_key=public_key_b64(generate_key()))
    except ValueError as exc:
        raise BadInputError(
            f"NAME {printable(name)!r}: 1-64 letters, digits, '.', '_' or '-', not starting with '.'"
        ) from exc
    path = output or keys_dir(settings_from(ctx)) / f"{name}.pem"
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder; name the key file to write")
    if path.exists() or path.is_symlink():
        raise BadInputError(f"{path}: a key already exists; keys are never overwritten")
    key = generate_key()
    try:
        write_private_key(key, path)
    except OSError as exc:
        raise BadInputError(f"{path}: cannot write the key ({exc.strerror or exc})") from None
    public = public_key_b64(key)
    if as_json:
        print_json({"name": name, "public_key": public, "private_key_file": str(path)})
        return
    out.print(f"wrote {path} (private: keep it to yourself)")
    out.print("add to the policy's committee:")
    typer.echo(f"  - {{name: {name}, public_key: {public}}}")


def sign_command(
    fingerprint: str = typer.Argument(
        ..., help="The proposal fingerprint (see `mwb proposals ID`)."
    ),
    key: Path | None = typer.Option(None, "--key", help="Your Ed25519 private key file."),
    eth_key: Path | None = typer.Option(
        None, "--eth-key", help="An Ethereum private key file (0x and 64 hex digits)."
    ),
    chain_id: int | None = typer.Option(None, "--chain-id", help="The policy's chain id."),
    committee: str | None = typer.Option(None, "--committee", help="The policy's committee."),
    scheme: str = typer.Option("eip712", "--scheme", help="eip712 | eip191 (with --eth-key)."),
    decision: str = typer.Option("approve", "--decision", help="approve | reject"),
) -> None:
    """Sign a proposal fingerprint offline; give the output to `mwb approve ID --member --signature`.

    With --eth-key, the vote is signed as a wallet would (EIP-712 typed data, or EIP-191 with
    --scheme eip191) under the policy's --chain-id and --committee."""
    if decision not in ("approve", "reject"):
        raise BadInputError(f"--decision: {decision!r} is not approve or reject")
    if len(fingerprint) != 64:
        raise BadInputError(
            "FINGERPRINT: give all 64 hex digits; a signature covers the whole fingerprint"
        )
    if (key is None) == (eth_key is None):
        raise BadInputError("give exactly one of --key FILE and --eth-key FILE")
    if key is not None:
        typer.echo(sign(_private_key(key), decision, fingerprint.lower()))  # type: ignore[arg-type]
        return
    from governance.ethereum import EthereumError, eth_sign

    if chain_id is None or not committee:
        raise BadInputError("--eth-key needs --chain-id and --committee (the policy's `ethereum`)")
    if scheme not in ("eip712", "eip191"):
        raise BadInputError(f"--scheme: {scheme!r} is not eip712 or eip191")
    assert eth_key is not None
    try:
        text = regular_file(eth_key, max_bytes=200, what="--eth-key").read_text().strip()
    except UnicodeDecodeError:
        text = ""
    if not (text.startswith("0x") and len(text) == 66):
        raise BadInputError(f"{eth_key}: not an Ethereum private key (0x and 64 hex digits)")
    try:
        signature = eth_sign(
            bytes.fromhex(text[2:]),
            fingerprint.lower(),
            decision,
            chain_id,
            committee,
            scheme=scheme,
        )
    except (ValueError, EthereumError) as exc:
        raise BadInputError(f"{eth_key}: {exc}") from None
    typer.echo(signature)


def _private_key(path: Path):
    try:
        return read_private_key(path)
    except KeyError_ as exc:
        raise BadInputError(str(exc)) from exc


def _ballot(
    registry: Registry,
    state: ProposalState,
    decision: Decision,
    key: Path | None,
    member: str | None,
    signature: str | None,
) -> tuple[str, str]:
    """(member name, signature) from a key file, or as given for a signature made elsewhere."""
    if key is not None:
        private = _private_key(key)
        public = public_key_b64(private)
        found = registry.policy().member_with_key(public_key_bytes(public))
        named = found.name if found else None
        return named or f"key:{public[:16]}", sign(private, decision, state.proposal.fingerprint)
    if member is None or signature is None:
        raise BadInputError("give --key FILE, or --member NAME with --signature BASE64")
    return member, signature


def _vote(ctx, proposal_id, decision: Decision, key, member, signature, reason, as_json) -> None:
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise BadInputError(f"--reason: {len(reason):,} characters; at most {MAX_REASON_CHARS:,}")
    if signature is not None and len(signature) > 200:
        raise BadInputError("--signature: too long for an Ed25519 signature (88 base64 characters)")
    with _registry(ctx) as registry:
        state = registry.state(proposal_id)
        name, signature_b64 = _ballot(registry, state, decision, key, member, signature)
        new = registry.vote(
            state.id,
            member=name,
            decision=decision,
            signature=signature_b64,
            now=_now(),
            reason=reason or "",
        )
        head = _head_line(registry)
        quorum = registry.policy().quorum
    if as_json:
        print_json({**_state_payload(new), "audit_head": head})
        return
    approvals = sum(v.decision == "approve" for v in new.votes)
    out.print(
        f"{name} {PAST[decision]} {new.id}: {approvals}/{quorum} approvals · status {new.status.value}"
    )
    _print_head(head)


def approve(
    ctx: typer.Context,
    proposal_id: str = typer.Argument(..., help="Proposal id (P-…) or fingerprint prefix."),
    key: Path | None = typer.Option(None, "--key", help="Your private key file (signs here)."),
    member: str | None = typer.Option(
        None, "--member", help="With --signature: a signature made elsewhere."
    ),
    signature: str | None = typer.Option(
        None, "--signature", help="From `mwb sign` (base64) or a wallet (0x…, EIP-712/EIP-191)."
    ),
    reason: str | None = typer.Option(None, "--reason", help="Optional note."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Approve a proposal with a committee member's signature (Ed25519, or a wallet's)."""
    _vote(ctx, proposal_id, "approve", key, member, signature, reason, as_json)


def reject(
    ctx: typer.Context,
    proposal_id: str = typer.Argument(..., help="Proposal id (P-…) or fingerprint prefix."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the audit log)."),
    key: Path | None = typer.Option(None, "--key", help="Your private key file (signs here)."),
    member: str | None = typer.Option(
        None, "--member", help="With --signature: a signature made elsewhere."
    ),
    signature: str | None = typer.Option(
        None, "--signature", help="From `mwb sign` (base64) or a wallet (0x…, EIP-712/EIP-191)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Reject a proposal with a committee member's Ed25519 signature and a reason."""
    _vote(ctx, proposal_id, "reject", key, member, signature, reason, as_json)


def enact_command(
    ctx: typer.Context,
    proposal_id: str = typer.Argument(..., help="Proposal id (P-…) or fingerprint prefix."),
    effective_from: str | None = typer.Option(
        None, "--effective-from", help="When it takes effect (default: now)."
    ),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Make an approved proposal's set (or policy) the one in force."""
    with _registry(ctx) as registry:
        state = registry.enact(
            proposal_id,
            actor=_actor(actor),
            now=_now(),
            effective_from=_when(effective_from, "--effective-from"),
        )
        head = _head_line(registry)
    if as_json:
        print_json({**_state_payload(state), "audit_head": head})
        return
    out.print(
        f"enacted {state.id}: set {state.proposal.proposed_fingerprint[:12]} in force from "
        f"{state.effective_from:%Y-%m-%d %H:%M:%S} UTC"
    )
    _print_head(head)


# ---------------------------------------------------------------------------- audit and triggers


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    expect_head: str | None = typer.Option(
        None,
        "--expect-head",
        help="A published head hash (16 to 64 hex digits) kept outside the database.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Recompute the hash chain and cross-check the state tables; exit 4 naming the first bad entry."""
    if expect_head is not None:
        try:
            expect_head = head_prefix(expect_head)
        except ValueError as exc:
            raise BadInputError(f"--expect-head: {exc}") from None
    with _registry(ctx) as registry:
        report = registry.verify(expect_head=expect_head)
    if as_json:
        print_json(report.as_dict())
    elif report.ok:
        out.print(
            f"audit log verifies: {report.chain.entries} entries, head {report.chain.head_seq} "
            f"{report.chain.head_hash}"
        )
    elif not report.chain.ok:
        err.print(
            f"audit log does NOT verify: first bad entry {report.chain.first_bad}: "
            f"{report.chain.problem}"
        )
    else:
        more = len(report.problems) - 1
        err.print(
            f"state does NOT match the audit log: {report.problems[0]}"
            + (f" (and {more} more: --json lists them)" if more else "")
        )
    if not report.ok:
        raise typer.Exit(UNVERIFIED)


@audit_app.command("log")
def audit_log(
    ctx: typer.Context,
    limit: int = typer.Option(20, "--limit", min=0, help="The latest N entries (0: all)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The latest audit entries."""
    with _registry(ctx) as registry:
        entries = registry.audit_entries()
    shown = entries[-limit:] if limit else entries
    if as_json:
        print_json([e.as_dict() for e in shown])
        return
    rows = [
        (
            e.seq,
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.actor,
            e.action,
            e.subject[:24],
            e.details.get("reason") or e.details.get("title") or e.details.get("decision") or "",
            e.hash[:12],
        )
        for e in shown
    ]
    out.print(
        table(None, ["seq", "at (UTC)", "actor", "action", "subject", "detail", "hash"], rows)
    )


def triggers(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run the drift and breach rules; draft a proposal (HOME/proposals/drafts) for each that fires."""
    from pipelines.governance import run_triggers

    settings = settings_from(ctx)
    with _registry(ctx) as registry:
        outcomes = run_triggers(registry.con, settings, now=_now())
        head = _head_line(registry)
    if as_json:
        print_json({"outcomes": [o.as_dict() for o in outcomes], "audit_head": head})
        return
    for outcome in outcomes:
        state = "fired" if outcome.finding.fired else "quiet"
        out.print(f"{outcome.finding.rule}: {state} — {outcome.finding.summary}", markup=False)
        if outcome.draft is not None:
            out.print(
                f"  drafted {outcome.draft.id}: {outcome.path} (submit with `mwb propose {outcome.path}`)",
                markup=False,
            )
        if outcome.refused:
            out.print(f"  the draft was refused: {outcome.refused}", markup=False)


# ---------------------------------------------------------------------------- shadow runs

shadow_app = typer.Typer(help="Shadow runs: a proposal's set beside the one in force, daily.")


@shadow_app.command("start")
def shadow_start(
    ctx: typer.Context,
    proposal_id: str = typer.Argument(..., help="Proposal id (P-…) or fingerprint prefix."),
    first_day: str | None = typer.Option(
        None, "--from", help="First market day to margin under both sets (default: tomorrow)."
    ),
    days: int | None = typer.Option(
        None, "--days", help="Days to run (default: the policy's gate.shadow_default_days)."
    ),
    positions: Path | None = typer.Option(
        None,
        "--positions",
        help="Account snapshot (account,instrument,quantity CSV) to margin beside the test "
        "portfolios from the first day.",
    ),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Put a submitted or approved proposal's set in shadow (audited)."""
    from datetime import timedelta

    from pipelines.cli.market import parse_day
    from pipelines.shadow import read_snapshot

    start = parse_day(first_day, "--from") or (_now() + timedelta(days=1)).date()
    snapshot = read_snapshot(positions, start) if positions is not None else None
    with _registry(ctx) as registry:
        run = registry.start_shadow(
            registry.resolve(proposal_id),
            actor=_actor(actor),
            now=_now(),
            first_day=start,
            days=days,
            accounts=snapshot,
        )
        head = _head_line(registry)
    payload = {
        "proposal": run.proposal_id,
        "shadow_set": run.shadow_set,
        "first_day": run.first_day.isoformat(),
        "days": run.days,
        "accounts": None if snapshot is None else snapshot.facts(),
        "audit_head": head,
    }
    if as_json:
        print_json(payload)
        return
    out.print(
        f"{run.proposal_id} in shadow from {run.first_day} for {run.days} day(s): set "
        f"{run.shadow_set[:12]} beside the set in force"
        + ("" if snapshot is None else f", with {_snapshot_line(snapshot)}"),
        markup=False,
    )
    _print_head(head)


def _snapshot_line(snapshot) -> str:
    return (
        f"{len(snapshot.accounts)} account(s), {len(snapshot.rows)} position(s) "
        f"(snapshot {snapshot.sha256[:12]}) from {snapshot.from_day}"
    )


@shadow_app.command("accounts")
def shadow_accounts(
    ctx: typer.Context,
    proposal_id: str = typer.Argument(..., help="A proposal in shadow (P-…)."),
    positions: Path = typer.Argument(..., help="account,instrument,quantity CSV."),
    from_day: str = typer.Option(
        ..., "--from", help="First day the snapshot is in force (after every recorded day)."
    ),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Supply a newer account snapshot to a shadow run (audited); it replaces the one before
    from its first day."""
    from pipelines.cli.market import parse_day
    from pipelines.shadow import read_snapshot

    day = parse_day(from_day, "--from")
    assert day is not None  # a required option
    snapshot = read_snapshot(positions, day)
    with _registry(ctx) as registry:
        proposal = registry.resolve(proposal_id)
        registry.add_shadow_accounts(proposal, snapshot, actor=_actor(actor), now=_now())
        head = _head_line(registry)
    if as_json:
        print_json({"proposal": proposal, "accounts": snapshot.facts(), "audit_head": head})
        return
    out.print(f"{proposal}: {_snapshot_line(snapshot)}", markup=False)
    _print_head(head)


@shadow_app.command("run")
def shadow_run(
    ctx: typer.Context,
    day: str | None = typer.Option(
        None, "--day", help="Record through this market day (default: the last with prices)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Record every open shadow run's new days (what the daily job does) and write the shadow
    reports."""
    from pipelines.cli.market import parse_day
    from pipelines.shadow import last_market_day, run_shadows

    settings = settings_from(ctx)
    con = connect(settings.warehouse_path)
    try:
        through = parse_day(day, "--day") or last_market_day(con)
        try:
            results = run_shadows(con, settings, through=through)
        except GovernanceError as exc:
            raise BadInputError(str(exc)) from exc
    finally:
        con.close()
    if as_json:
        print_json({"through": through.isoformat(), "shadows": results})
        return
    if not results:
        out.print("no proposal is in shadow")
    for r in results:
        out.print(
            f"{r['proposal']}: {r['recorded']}/{r['days']} day(s) through {through}; breaches "
            f"{r['active_breaches']} in force, {r['shadow_breaches']} shadow, {r['shadow_only']} "
            f"only the shadow — {r['verdict']}"
            + (f"; report {r['report']}" if r["report"] else ""),
            markup=False,
        )


def payload_command(
    ctx: typer.Context,
    proposal_id: str = typer.Argument(..., help="An approved or enacted proposal (P-…)."),
    target: str = typer.Option("derive-pmrm2", "--target", help="derive-pmrm2"),
    to: str = typer.Option(..., "--to", help="The risk manager's contract address."),
    chain_id: int | None = typer.Option(
        None, "--chain-id", help="Default: the policy's ethereum.chain_id."
    ),
    out_file: Path | None = typer.Option(
        None, "--out", help="The batch file (default HOME/payloads/ID-TARGET.json)."
    ),
    actor: str | None = typer.Option(None, "--actor", help=ACTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write a Safe Transaction Builder batch calling the target's parameter setters with the
    proposal's values (fixed point, ABI-encoded), print the readable diff, and record the
    batch's SHA-256 in the audit log."""
    from governance.ethereum import EthereumError
    from governance.payload import (
        TARGETS,
        PayloadError,
        batch_sha256,
        readable_diff,
        transaction_batch,
    )
    from governance.workflow import Event, Status
    from reports.serialize import dumps

    if target not in TARGETS:
        raise BadInputError(f"--target {target!r}: one of {', '.join(TARGETS)}")
    settings = settings_from(ctx)
    with _registry(ctx) as registry:
        state = registry.state(registry.resolve(proposal_id))
        if state.status not in (Status.APPROVED, Status.ENACTED):
            raise BadInputError(
                f"{state.id} is {state.status.value}: a payload needs the committee's approval"
            )
        policy = registry.policy(state.proposal.policy_fingerprint)
        chain = chain_id or (policy.ethereum.chain_id if policy.ethereum else None)
        if chain is None:
            raise BadInputError("--chain-id: the policy names no chain (ethereum.chain_id)")
        old = registry.parameter_set(state.proposal.base_fingerprint).to_model_params().derive
        new = state.proposal.proposed.to_model_params().derive
        from margin_engine.venues.derive import PUBLISHED

        try:
            calls = TARGETS[target](old or PUBLISHED, new or PUBLISHED)
            if not calls:
                raise PayloadError(f"{state.id} changes none of {target}'s parameters")
            batch = transaction_batch(
                calls,
                to=to,
                chain_id=chain,
                safe=policy.safe.address if policy.safe else None,
                name=f"{state.id}: {state.proposal.document.title}"[:200],
                description=f"Margin Workbench proposal {state.proposal.fingerprint}",
            )
        except (PayloadError, EthereumError) as exc:
            raise BadInputError(f"{state.id}: {exc}") from None
        digest = batch_sha256(batch)
        path = write_text(
            out_file or settings.home / "payloads" / f"{state.id}-{target}.json",
            dumps(batch, indent=2, sort_keys=True) + "\n",
        )
        entry = registry.record(
            Event(
                "payload",
                state.id,
                _actor(actor),
                _now(),
                {
                    "target": target,
                    "to": batch["transactions"][0]["to"],
                    "chain_id": chain,
                    "sha256": digest,
                    "calls": [c.function for c in calls],
                },
            )
        )
    diff = readable_diff(old or PUBLISHED, new or PUBLISHED)
    result = {
        "proposal": state.id,
        "target": target,
        "file": str(path),
        "sha256": digest,
        "calls": [{"function": c.function, "calldata": c.calldata} for c in calls],
        "diff": diff,
        "audit_entry": entry.seq,
    }
    if as_json:
        print_json(result)
        return
    out.print(f"payload {path}: {len(calls)} call(s), sha256 {digest}", markup=False)
    for line in diff:
        out.print(f"  {line}", markup=False)
