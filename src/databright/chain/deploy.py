"""Deploy the DataBright contracts from their artifacts and remember where they went.

Addresses are recorded per chain id in ``<data-dir>/deployments/<chain-id>.json``. Deploying
again deploys nothing when every recorded address still holds the code of the current artifact;
a record whose code is gone (the node was reset) is reported, and replaced only on request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from databright.atomic import atomic_write
from databright.chain.artifacts import load_artifact
from databright.chain.gateway import Gateway
from databright.errors import ContractNotDeployed, DamagedRecord
from databright.types import Address

__all__ = ["PLAN", "Deployment", "deploy", "load_deployment"]


@dataclass(frozen=True)
class Step:
    """One deployment: ``blueprint`` steps store initcode; ``args`` name earlier steps."""

    key: str
    artifact: str
    blueprint: bool = False
    args: tuple[str, ...] = ()


# The data market clones one ShareToken per dataset from this blueprint.
PLAN: tuple[Step, ...] = (
    Step("ShareTokenBlueprint", "ShareToken", blueprint=True),
    Step("DataMarket", "DataMarket", args=("ShareTokenBlueprint",)),
)


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    addresses: dict[str, Address]
    source_hashes: dict[str, str]
    path: Path
    # keccak of the code each address held right after its deployment
    code_hashes: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Address:
        try:
            return self.addresses[key]
        except KeyError:
            raise ContractNotDeployed(
                f"{key} is not deployed on chain {self.chain_id}; run `databright deploy`"
            ) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "addresses": self.addresses,
            "source_hashes": self.source_hashes,
            "code_hashes": self.code_hashes,
        }


def _record_path(data_dir: Path, chain_id: int) -> Path:
    return data_dir / "deployments" / f"{chain_id}.json"


def load_deployment(data_dir: Path, chain_id: int) -> Deployment:
    path = _record_path(data_dir, chain_id)
    if not path.exists():
        raise ContractNotDeployed(
            f"nothing is deployed on chain {chain_id} from {data_dir}; run `databright deploy`"
        )
    try:
        body = json.loads(path.read_text())
        return Deployment(
            chain_id=int(body["chain_id"]),
            addresses={k: Address(to_checksum_address(v)) for k, v in body["addresses"].items()},
            source_hashes=dict(body.get("source_hashes", {})),
            path=path,
            code_hashes=dict(body.get("code_hashes", {})),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise DamagedRecord(
            f"deployment record {path} is damaged ({exc}); delete it and run `databright deploy`"
        ) from None


def _write_atomic(path: Path, body: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(body, indent=2, sort_keys=True))


def _code_hash(gw: Gateway, address: str) -> str:
    return "0x" + keccak(gw.code(address)).hex()


def _code_matches(gw: Gateway, address: str, step: Step, recorded: str | None = None) -> bool:
    code = gw.code(address)
    if recorded is not None:
        # What we deployed there: the only check that holds for any code generator (with
        # Vyper's venom pipeline the standalone runtime output differs from the deployed code
        # in its data section).
        return "0x" + keccak(code).hex() == recorded
    art = load_artifact(step.artifact)
    if step.blueprint:
        # ERC-5202: a blueprint's code is the 3-byte preamble 0xFE7100 followed by the initcode.
        return code[3:] == bytes(HexBytes(art.bytecode))
    # Records without code hashes: Vyper appends immutable values after the runtime code.
    return len(code) > 0 and code.startswith(bytes(HexBytes(art.bytecode_runtime)))


def deploy(gw: Gateway, data_dir: Path, redeploy: bool = False) -> tuple[Deployment, list[str]]:
    """Deploy whatever the chain lacks; return the deployment and the keys newly deployed.

    Raises ContractNotDeployed when recorded addresses have lost their code (the chain was
    reset) unless ``redeploy`` is set, so a reset never goes unnoticed.
    """
    path = _record_path(data_dir, gw.chain_id)
    addresses: dict[str, Address] = {}
    hashes: dict[str, str] = {}
    code_hashes: dict[str, str] = {}
    if path.exists():
        prior = load_deployment(data_dir, gw.chain_id)
        missing = [k for k, a in prior.addresses.items() if not gw.has_code(a)]
        if missing and not redeploy:
            raise ContractNotDeployed(
                f"the contracts recorded for chain {gw.chain_id} in {path} are gone "
                f"({', '.join(missing)} has no code; the node was reset); "
                "run `databright deploy --redeploy` to deploy anew"
            )
        if not missing:
            addresses, hashes = dict(prior.addresses), dict(prior.source_hashes)
            code_hashes = dict(prior.code_hashes)

    new: list[str] = []
    for step in PLAN:
        art = load_artifact(step.artifact)
        current = addresses.get(step.key)
        dependency_changed = any(d in new for d in step.args)
        if (
            current
            and hashes.get(step.key) == art.source_hash
            and not dependency_changed
            and _code_matches(gw, current, step, code_hashes.get(step.key))
        ):
            continue
        if step.blueprint:
            addresses[step.key] = gw.deploy_blueprint(step.artifact)
        else:
            client = gw.deploy(step.artifact, *(addresses[a] for a in step.args))
            addresses[step.key] = client.address
        hashes[step.key] = art.source_hash
        code_hashes[step.key] = _code_hash(gw, addresses[step.key])
        new.append(step.key)

    deployment = Deployment(gw.chain_id, addresses, hashes, path, code_hashes)
    if new:
        _write_atomic(path, deployment.to_json())
    return deployment, new
