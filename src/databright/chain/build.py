"""Compile every deployable Vyper contract into a committed JSON artifact.

``python -m databright.chain.build`` writes ``src/databright/chain/artifacts/<name>.json`` for
each ``contracts/*.vy`` (modules under ``contracts/modules/`` and interfaces are imported, not
deployed). ``python -m databright.chain.build --check`` exits non-zero when an artifact is
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

__all__ = ["ARTIFACTS_DIR", "CONTRACTS_DIR", "compile_contract", "stale_artifacts", "write_artifacts"]

ROOT = Path(__file__).resolve().parents[3]
CONTRACTS_DIR = ROOT / "contracts"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
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
        "source_path": str(source.relative_to(ROOT)) if source.is_relative_to(ROOT) else source.name,
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


def write_artifacts() -> list[Path]:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    artifacts = _compile_all()
    names = {a.name for a in artifacts}
    for old in ARTIFACTS_DIR.glob("*.json"):
        if old.stem not in names:
            old.unlink()
    for a in artifacts:
        a.path.write_text(a.dumps())
    return [a.path for a in artifacts]


def stale_artifacts() -> list[str]:
    """Names of contracts whose committed artifact differs from a fresh compile (or is missing)."""
    fresh = {a.name: a for a in _compile_all()}
    stale = [n for n, a in fresh.items() if not a.path.exists() or a.path.read_text() != a.dumps()]
    stale += [p.stem for p in ARTIFACTS_DIR.glob("*.json") if p.stem not in fresh]
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
