"""The committed artifacts and generated clients match a fresh compile of contracts/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from databright_dev.build import stale_artifacts

from databright.chain.artifacts import artifact_names, load_artifact
from databright.errors import NotFound


def test_artifacts_are_fresh() -> None:
    # A clean checkout compiles everything; a verdict of "fresh" is then remembered by
    # fingerprint (see the next test), so a local rerun with nothing changed takes no compile.
    assert stale_artifacts() == [], "run `make artifacts` and commit the result"


def test_a_remembered_verdict_is_forgotten_when_any_input_or_output_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import databright_dev.build as build

    contracts = Path(shutil.copytree(build.CONTRACTS_DIR, tmp_path / "contracts"))
    artifacts = Path(shutil.copytree(build.ARTIFACTS_DIR, tmp_path / "artifacts"))
    clients = Path(shutil.copy(build.CLIENTS_PATH, tmp_path / "clients.py"))
    monkeypatch.setattr(build, "CONTRACTS_DIR", contracts)
    monkeypatch.setattr(build, "ARTIFACTS_DIR", artifacts)
    monkeypatch.setattr(build, "CLIENTS_PATH", clients)
    monkeypatch.setattr(build, "FRESH_CACHE", tmp_path / "cache" / "fresh")
    before = build.fingerprint()
    assert build.fingerprint() == before  # deterministic

    module = next(contracts.glob("modules/*.vy"))
    for path in (contracts / "DataMarket.vy", module, artifacts / "ShareToken.json", clients):
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert build.fingerprint() != before, f"a change to {path.name} went unnoticed"
        path.write_bytes(original)
        assert build.fingerprint() == before
    (contracts / "interfaces" / "INew.vyi").write_text("")
    assert build.fingerprint() != before, "a new contract file went unnoticed"
    (contracts / "interfaces" / "INew.vyi").unlink()
    kept = (artifacts / "ShareToken.json").read_bytes()
    (artifacts / "ShareToken.json").unlink()
    assert build.fingerprint() != before, "a deleted artifact went unnoticed"
    (artifacts / "ShareToken.json").write_bytes(kept)
    assert build.fingerprint() == before

    # A remembered verdict answers without compiling only for its own fingerprint.
    build.FRESH_CACHE.parent.mkdir()
    build.FRESH_CACHE.write_text(before + "\n")
    assert build.stale_artifacts() == []
    monkeypatch.setenv("DATABRIGHT_BUILD_CACHE", "0")  # and it can always be bypassed
    assert not build._cache_enabled(True)


def test_every_artifact_loads_with_abi_and_bytecode() -> None:
    names = artifact_names()
    assert {"DataMarket", "ShareToken"} <= set(names)
    for name in names:
        art = load_artifact(name)
        assert art.abi and art.bytecode.startswith("0x") and art.compiler == "vyper 0.4.3"


def test_unknown_artifact_is_named() -> None:
    with pytest.raises(NotFound, match="no compiled contract named 'Nope'"):
        load_artifact("Nope")


def test_generated_views_are_named_from_the_abi() -> None:
    from databright.chain.clients import (
        DataMarketConstants,
        Dataset,
        Evaluation,
        Proposal,
        ProposalStatus,
        RegistryEntry,
    )

    abi = load_artifact("DataMarket").abi
    outputs = {e["name"]: e["outputs"] for e in abi if e.get("type") == "function"}

    def fields(fn: str) -> tuple[str, ...]:
        return tuple(c["name"] for c in outputs[fn][0]["components"])

    assert Dataset._fields == fields("dataset")
    assert Proposal._fields == fields("proposal")
    assert Evaluation._fields == fields("evaluation")
    assert RegistryEntry._fields == fields("registry_entry") == fields("registry")
    assert [(s.name, int(s)) for s in ProposalStatus] == [
        ("NONE", 0), ("PENDING", 1), ("ACCEPTED", 2), ("REJECTED", 3), ("EXPIRED", 4)
    ]  # fmt: skip
    # The contract's constants, private and module ones included, and its parameter bounds.
    assert DataMarketConstants.SEQ_BITS == 32 and DataMarketConstants.NAME_MAX == 25
    assert DataMarketConstants.SHARE_UNIT == 10**18
    assert DataMarketConstants.MAX_QUALITY_CAP_BPS == 100 * DataMarketConstants.BPS


PROBE = """\
# pragma version ~=0.4.3
flag Role:
    READER
    WRITER

struct Inner:
    a: uint256
    who: address

struct Outer:
    n: uint256
    inner: Inner
    many: DynArray[Inner, 4]

STATUS_OPEN: public(constant(uint8)) = 1
STATUS_SHUT: constant(uint8) = 2
STATUS_SHIFT: constant(uint256) = 8
_SECRET: constant(bytes32) = keccak256("x")

@external
@view
def outer() -> Outer:
    return empty(Outer)

@external
@view
def pair() -> (Inner, uint256):
    return empty(Inner), 1

@external
def label(text: String[7], blob: Bytes[9]):
    pass
"""


def test_renderer_nests_structs_and_reads_flags_constants_and_bounds(tmp_path, monkeypatch) -> None:
    from databright_dev.build import compile_contract, render_clients
    from eth_utils import keccak

    (tmp_path / "Probe.vy").write_text(PROBE)
    monkeypatch.chdir(tmp_path)
    code = render_clients([compile_contract(tmp_path / "Probe.vy")])
    ns: dict[str, object] = {}
    exec(compile(code, "clients.py", "exec"), ns)  # the generated module runs as written
    consts = ns["ProbeConstants"]
    assert (consts.STATUS_OPEN, consts.STATUS_SHIFT) == (1, 8)
    assert keccak(text="x") == consts.SECRET  # private, folded by the compiler
    assert (consts.TEXT_MAX, consts.BLOB_MAX) == (7, 9)
    assert [(s.name, int(s)) for s in ns["ProposalStatus"]] == [("OPEN", 1), ("SHUT", 2)]
    assert [(r.name, int(r)) for r in ns["Role"]] == [("READER", 1), ("WRITER", 2)]

    who = "0x" + "ab" * 20
    client = object.__new__(ns["ProbeClient"])
    client.call = lambda fn, *a: {"outer": (1, (2, who), [(3, who)]), "pair": ((4, who), 5)}[fn]
    out = client.outer()
    assert type(out).__name__ == "Outer" and out.inner.who == who and out.many[0].a == 3
    assert type(out.inner).__name__ == type(out.many[0]).__name__ == "Inner"
    inner, n = client.pair()
    assert (inner.a, n) == (4, 5) and type(inner).__name__ == "Inner"
