"""Compile every deployable Vyper contract into a committed JSON artifact.

``python -m databright_dev.build`` writes ``src/databright/chain/artifacts/<name>.json`` for
each ``contracts/*.vy`` (modules under ``contracts/modules/`` and interfaces are imported, not
deployed). ``python -m databright_dev.build --check`` exits non-zero when an artifact is
missing or stale; the test suite runs the same check.

Only this module imports the compiler: the application reads artifacts, so it runs without
vyper installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from databright.chain.artifacts import ARTIFACTS_DIR

__all__ = [
    "ARTIFACTS_DIR",
    "CONTRACTS_DIR",
    "compile_contract",
    "stale_artifacts",
    "write_artifacts",
]

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = ROOT / "contracts"
OUTPUTS = ["abi", "bytecode", "bytecode_runtime", "blueprint_bytecode", "integrity"]


@dataclass(frozen=True)
class Artifact:
    name: str
    body: dict[str, Any]

    @property
    def path(self) -> Path:
        return ARTIFACTS_DIR / f"{self.name}.json"

    def dumps(self) -> str:
        return json.dumps(self.body, indent=1, sort_keys=True) + "\n"


def deployables(contracts_dir: Path = CONTRACTS_DIR) -> list[Path]:
    return sorted(contracts_dir.glob("*.vy"))


def compile_contract(source: Path) -> Artifact:
    import vyper
    from vyper.cli.vyper_compile import compile_files

    # The search path holds contracts/ (our modules and interfaces); snekmate is found on
    # sys.path, where pip installed it.
    out = compile_files(
        [str(source.relative_to(source.parent))],
        OUTPUTS,
        paths=[str(source.parent)],
    )
    (result,) = out.values()
    body = {
        "contract_name": source.stem,
        "source_path": str(source.relative_to(ROOT))
        if source.is_relative_to(ROOT)
        else source.name,
        "compiler": f"vyper {vyper.__version__}",
        "source_hash": result["integrity"],
        "abi": result["abi"],
        "bytecode": result["bytecode"],
        "bytecode_runtime": result["bytecode_runtime"],
        "blueprint_bytecode": result["blueprint_bytecode"],
    }
    return Artifact(source.stem, body)


def _compile_all() -> list[Artifact]:
    import os

    cwd = os.getcwd()
    os.chdir(CONTRACTS_DIR)  # vyper resolves the input file relative to the working directory
    try:
        return [compile_contract(CONTRACTS_DIR / p.name) for p in deployables()]
    finally:
        os.chdir(cwd)


CLIENTS_PATH = ARTIFACTS_DIR.parent / "clients.py"

_PY_TYPES = {"address": "str", "bool": "bool", "string": "str"}


def _py_type(abi_type: dict[str, Any]) -> str:
    t: str = abi_type["type"]
    if t.endswith("]"):
        inner = dict(abi_type, type=t[: t.rindex("[")])
        return f"list[{_py_type(inner)}]"
    if t == "tuple":
        return "tuple[Any, ...]"
    if t in _PY_TYPES:
        return _PY_TYPES[t]
    if t.startswith(("uint", "int")):
        return "int"
    if t.startswith("bytes"):
        return "bytes"
    return "Any"


def _client_class(name: str, abi: list[dict[str, Any]]) -> str:
    lines = [
        f"class {name}Client(ContractClient):",
        f'    """Typed client of {name} (generated from its artifact)."""',
        "",
    ]
    seen: set[str] = set()
    for fn in sorted((e for e in abi if e.get("type") == "function"), key=lambda e: e["name"]):
        if fn["name"] in seen:  # overloads: the generic call/transact handle them
            continue
        seen.add(fn["name"])
        params = [(p["name"] or f"arg{i}", _py_type(p)) for i, p in enumerate(fn["inputs"])]
        sig = ", ".join(["self", *(f"{n}: {t}" for n, t in params)])
        args = ", ".join([f'"{fn["name"]}"', *(n for n, _ in params)])
        if fn.get("stateMutability") in ("view", "pure"):
            outs = fn.get("outputs", [])
            ret = (
                _py_type(outs[0]) if len(outs) == 1 else ("None" if not outs else "tuple[Any, ...]")
            )
            lines += [
                f"    def {fn['name']}({sig}) -> {ret}:",
                f"        return cast({ret!r}, self.call({args}))",
                "",
            ]
        else:
            payable = fn.get("stateMutability") == "payable"
            extra = ", value: int = 0" if payable else ""
            pass_value = ", value=value" if payable else ""
            lines += [
                f"    def {fn['name']}({sig}{extra}, gas: int | None = None) -> Receipt:",
                f"        return self.transact({args}{pass_value}, gas=gas)",
                "",
            ]
    return "\n".join(lines)


def render_clients(artifacts: list[Artifact]) -> str:
    parts = [
        '"""Typed contract clients, generated from the artifacts by ``databright_dev.build``.',
        "",
        "Do not edit: run ``make artifacts``. A test fails when this file is stale.",
        '"""',
        "",
        "# ruff: noqa",
        "from __future__ import annotations",
        "",
        "from typing import Any, cast",
        "",
        "from databright.chain.gateway import ContractClient, Receipt",
        "",
        f"__all__ = {sorted(a.name + 'Client' for a in artifacts)!r}",
        "",
        "",
    ]
    body = "\n\n".join(_client_class(a.name, a.body["abi"]) for a in artifacts)
    return "\n".join(parts) + body


def write_artifacts() -> list[Path]:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    artifacts = _compile_all()
    names = {a.name for a in artifacts}
    for old in ARTIFACTS_DIR.glob("*.json"):
        if old.stem not in names:
            old.unlink()
    for a in artifacts:
        a.path.write_text(a.dumps())
    CLIENTS_PATH.write_text(render_clients(artifacts))
    return [a.path for a in artifacts] + [CLIENTS_PATH]


def stale_artifacts() -> list[str]:
    """Names of contracts whose committed artifact differs from a fresh compile (or is missing)."""
    compiled = _compile_all()
    fresh = {a.name: a for a in compiled}
    stale = [n for n, a in fresh.items() if not a.path.exists() or a.path.read_text() != a.dumps()]
    stale += [p.stem for p in ARTIFACTS_DIR.glob("*.json") if p.stem not in fresh]
    if not CLIENTS_PATH.exists() or CLIENTS_PATH.read_text() != render_clients(compiled):
        stale.append("clients.py")
    return sorted(stale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if any artifact is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_artifacts()
        if stale:
            print(f"stale artifacts: {', '.join(stale)}; run `make artifacts` and commit them")
            return 1
        print("artifacts are fresh")
        return 0
    for path in write_artifacts():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
