"""Compiled contract artifacts, as committed by ``databright_dev.build``.

The application reads only these JSON files, so it runs without the Vyper compiler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from databright.errors import NotFound

__all__ = ["ARTIFACTS_DIR", "Artifact", "artifact_names", "load_artifact"]

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    bytecode_runtime: str
    blueprint_bytecode: str
    source_hash: str
    compiler: str

    def function_names(self) -> set[str]:
        return {e["name"] for e in self.abi if e.get("type") == "function"}

    def event_names(self) -> set[str]:
        return {e["name"] for e in self.abi if e.get("type") == "event"}


def artifact_names() -> list[str]:
    return sorted(p.stem for p in ARTIFACTS_DIR.glob("*.json"))


@cache
def load_artifact(name: str) -> Artifact:
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.exists():
        known = ", ".join(artifact_names()) or "none"
        raise NotFound(f"no compiled contract named {name!r} (known: {known})")
    body = json.loads(path.read_text())
    return Artifact(
        name=name,
        abi=body["abi"],
        bytecode=body["bytecode"],
        bytecode_runtime=body["bytecode_runtime"],
        blueprint_bytecode=body["blueprint_bytecode"],
        source_hash=body["source_hash"],
        compiler=body["compiler"],
    )
