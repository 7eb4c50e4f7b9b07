"""Deploy the DataBright contracts from their artifacts, or join a market someone deployed, and
remember where they are.

Addresses are recorded per chain id in ``<data-dir>/deployments/<chain-id>.json``. Deploying
again deploys nothing when every recorded address still holds the code of the current artifact;
a record whose code is gone (the node was reset) is reported, and replaced only on request.

Joining (``join``) writes the same record from a market's address, or from a record its creator
shared, after checking that every address holds exactly the code this version's artifacts
deploy: a shared file or a typed address is another participant's word, not to be trusted.

Deploying is crash-safe: each deployment is recorded as ``pending`` (its transaction hash and the
address it creates) before its transaction is sent, so a run killed after the transaction was
mined but before the address was recorded adopts that contract on the next run instead of
deploying a second one and leaving the first orphaned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlp
from eth_utils import is_address, keccak, to_canonical_address, to_checksum_address
from hexbytes import HexBytes

from databright.atomic import atomic_write
from databright.chain.abi import constructor_data, quantity
from databright.chain.artifacts import load_artifact
from databright.chain.gateway import Gateway
from databright.errors import (
    ChainError,
    ContractNotDeployed,
    DamagedRecord,
    InvalidArgument,
    NotFound,
    WrongChain,
)
from databright.types import Address

__all__ = [
    "JOIN_ADVICE",
    "PLAN",
    "Deployment",
    "create_address",
    "deploy",
    "join",
    "load_deployment",
    "read_shared_record",
]

#: What every error about a missing market advises: deploying is for the one who creates one.
JOIN_ADVICE = (
    "join a market with `databright join --market ADDRESS` (or `databright join FILE` with the "
    "deployment file its creator shared); only a new market's creator runs `databright deploy`"
)


@dataclass(frozen=True)
class Step:
    """One deployment: ``blueprint`` steps store initcode; ``args`` name earlier steps."""

    key: str
    artifact: str
    blueprint: bool = False
    args: tuple[str, ...] = ()
    # Found from the data market's address when joining; the model market's contracts are
    # not (the data market does not know them): they come from a shared record, or from the
    # ModelMarket's own address.
    discoverable: bool = True
    # Its immutables hold its own address (an EIP-712 domain): see ``_matches_expected``.
    self_bound: bool = False


# The data market clones one ShareToken per dataset from this blueprint; the model market
# reads datasets, roles and share tokens from the data market; the weight sale reads models.
PLAN: tuple[Step, ...] = (
    Step("ShareTokenBlueprint", "ShareToken", blueprint=True),
    Step("DataMarket", "DataMarket", args=("ShareTokenBlueprint",)),
    Step("ModelMarket", "ModelMarket", args=("DataMarket",), discoverable=False, self_bound=True),
    Step("WeightSale", "WeightSale", args=("ModelMarket",), discoverable=False),
    # Devices, jobs and slashing of the computation market; its deployer allows coordinators.
    Step("ComputeMarket", "ComputeMarket", discoverable=False),
    # Paid access to datasets' curated data; reads initiators and share tokens.
    Step("DataAccess", "DataAccess", args=("DataMarket",), discoverable=False),
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
                f"{key} is not recorded for chain {self.chain_id} in {self.path}; {JOIN_ADVICE}"
            ) from None

    def to_json(self) -> dict[str, Any]:
        """The record as shared with other participants (``databright join FILE`` reads it)."""
        return {
            "chain_id": self.chain_id,
            "addresses": self.addresses,
            "source_hashes": self.source_hashes,
            "code_hashes": self.code_hashes,
        }


def _record_path(data_dir: Path, chain_id: int) -> Path:
    return data_dir / "deployments" / f"{chain_id}.json"


def _read_body(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text())
        if not isinstance(body, dict):
            raise TypeError("not a JSON object")
        return body
    except (ValueError, TypeError) as exc:
        raise DamagedRecord(
            f"deployment record {path} is damaged ({exc}); delete it, then {JOIN_ADVICE}"
        ) from None


def _parse(body: Mapping[str, Any], path: Path) -> Deployment:
    """A record's body as a Deployment; raises KeyError, TypeError or ValueError if malformed."""
    addresses = body["addresses"]
    if not isinstance(addresses, dict):
        raise TypeError("addresses is not an object")
    for key, value in addresses.items():
        if not isinstance(value, str) or not is_address(value):
            raise ValueError(f"{key} is not an address")
    return Deployment(
        chain_id=int(body["chain_id"]),
        addresses={k: Address(to_checksum_address(v)) for k, v in addresses.items()},
        source_hashes={str(k): str(v) for k, v in dict(body.get("source_hashes", {})).items()},
        path=path,
        code_hashes={str(k): str(v) for k, v in dict(body.get("code_hashes", {})).items()},
    )


def load_deployment(data_dir: Path, chain_id: int) -> Deployment:
    path = _record_path(data_dir, chain_id)
    if not path.exists():
        raise ContractNotDeployed(
            f"no market is recorded for chain {chain_id} in {data_dir}; {JOIN_ADVICE}"
        )
    body = _read_body(path)
    try:
        return _parse(body, path)
    except (ValueError, KeyError, TypeError) as exc:
        raise DamagedRecord(
            f"deployment record {path} is damaged ({exc}); delete it, then {JOIN_ADVICE}"
        ) from None


def read_shared_record(path: Path) -> Deployment:
    """A deployment record someone shared (``databright deployment export``), parsed but not
    yet trusted: ``join`` checks its addresses on the chain."""
    if not path.is_file():
        raise NotFound(f"deployment file {path} does not exist; check the path")
    try:
        body = json.loads(path.read_text())
        if not isinstance(body, dict):
            raise TypeError("not a JSON object")
        return _parse(body, path)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(
            f"{path} is not a DataBright deployment record ({exc}); ask for the file "
            "`databright deployment export` writes"
        ) from None


def _write_atomic(path: Path, body: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(body, indent=2, sort_keys=True))


def _code_hash(gw: Gateway, address: str) -> str:
    return "0x" + keccak(gw.code(address)).hex()


def create_address(sender: str, nonce: int) -> Address:
    """The address a contract created by ``sender``'s transaction number ``nonce`` gets."""
    raw = keccak(rlp.encode([to_canonical_address(sender), nonce]))[12:]
    return Address(to_checksum_address(raw))


def _expected_code(gw: Gateway, step: Step, addresses: Mapping[str, str]) -> bytes:
    """The code ``step`` leaves when deployed now with the recorded dependencies: the initcode
    run by ``eth_call``, so that immutables (and Vyper's data section) are exactly as deployed."""
    art = load_artifact(step.artifact)
    if step.blueprint:
        initcode = bytes(HexBytes(art.blueprint_bytecode))
    else:
        initcode = constructor_data(art.abi, art.bytecode, tuple(addresses[a] for a in step.args))
    return gw.call(None, initcode, what=f"checking the code of {step.key}")


def _matches_expected(
    gw: Gateway, step: Step, code: bytes, address: str, addresses: Mapping[str, str]
) -> bool:
    """Whether ``code``, read at ``address``, is what ``step`` deploys with the recorded
    dependencies.

    A contract that signs typed data (EIP-712) keeps its own address and domain separator
    among its immutables, and the ``eth_call`` simulation runs at another address: those two
    words, found where the real contract holds them, are left out of the comparison (the rest
    of the code, logic and other immutables alike, must be equal byte for byte).
    """
    expected = _expected_code(gw, step, addresses)
    if code == expected:
        return True
    if len(code) != len(expected) or not step.self_bound:
        return False
    runtime = len(HexBytes(load_artifact(step.artifact).bytecode_runtime))
    separator = bytes(gw.contract(step.artifact, address).call("domain_separator"))
    masked_code, masked_expected = bytearray(code), bytearray(expected)
    for word in (bytes(12) + bytes(HexBytes(address)), separator):
        at = code.find(word, runtime)
        if at < 0:
            return False
        masked_code[at : at + 32] = masked_expected[at : at + 32] = bytes(32)
    return masked_code == masked_expected


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


# --- joining ------------------------------------------------------------------------------


def _discover(gw: Gateway, market: str) -> dict[str, Address]:
    """Every address of the deployment whose DataMarket is at ``market``, read from the chain."""
    if not is_address(market):
        raise InvalidArgument(
            f"{market!r} is not an Ethereum address; give the market's 0x address"
        )
    address = Address(to_checksum_address(market))
    if not gw.has_code(address):
        raise ContractNotDeployed(
            f"no contract at {address} on chain {gw.chain_id}; check the market address and "
            "that --rpc reaches the market's chain"
        )
    found: dict[str, Address] = {}
    try:  # a ModelMarket's address names its data market too
        data_market = gw.contract("ModelMarket", address).call("market")
        found["ModelMarket"], address = address, Address(to_checksum_address(data_market))
    except ChainError:
        pass
    try:
        blueprint = gw.contract("DataMarket", address).call("share_token_blueprint")
    except ChainError:
        raise InvalidArgument(
            f"the contract at {address} is not a DataBright market; check the address"
        ) from None
    return {"ShareTokenBlueprint": Address(blueprint), "DataMarket": address, **found}


def join(
    gw: Gateway,
    data_dir: Path,
    market: str | None = None,
    shared: Deployment | None = None,
    replace: bool = False,
) -> tuple[Deployment, bool]:
    """Record the market at ``market`` (its DataMarket address) or in ``shared`` (a record
    someone shared) as this data dir's market on ``gw``'s chain.

    Every address must hold exactly the code this version's artifacts deploy. Returns the
    record and whether it changed; a data dir that records another market is switched only
    with ``replace``.
    """
    if (market is None) == (shared is None):
        raise InvalidArgument("give either a market address or a shared deployment file")
    if shared is not None:
        if shared.chain_id != gw.chain_id:
            raise WrongChain(
                f"{shared.path} is a market on chain {shared.chain_id} but the node at {gw.url} "
                f"serves chain {gw.chain_id}; point --rpc at the market's chain"
            )
        market = shared["DataMarket"]
    assert market is not None
    addresses = _discover(gw, market)
    if shared is not None:
        for key, address in addresses.items():
            if shared.addresses.get(key) != address:
                raise InvalidArgument(
                    f"{shared.path} records {key} at {shared.addresses.get(key)} but the market "
                    f"at {market} uses {address}; ask its creator for a current file"
                )
        for step in PLAN:
            if not step.discoverable and step.key in shared.addresses:
                addresses.setdefault(step.key, shared.addresses[step.key])
    hashes: dict[str, str] = {}
    code_hashes: dict[str, str] = {}
    for step in PLAN:
        if step.key not in addresses or any(a not in addresses for a in step.args):
            continue  # a part of the deployment this record does not name
        code = gw.code(addresses[step.key])
        if not _matches_expected(gw, step, code, addresses[step.key], addresses):
            raise InvalidArgument(
                f"the {step.key} at {addresses[step.key]} does not hold the code this version of "
                "DataBright deploys; check the address, or use the DataBright version its "
                "creator used"
            )
        hashes[step.key] = load_artifact(step.artifact).source_hash
        code_hashes[step.key] = "0x" + keccak(code).hex()

    path = _record_path(data_dir, gw.chain_id)
    deployment = Deployment(gw.chain_id, addresses, hashes, path, code_hashes)
    if path.exists() and not replace:
        try:
            prior = load_deployment(data_dir, gw.chain_id)
        except DamagedRecord:
            prior = None  # nothing usable to protect: the join repairs it
        if prior is not None and prior.addresses.get("DataMarket") == addresses["DataMarket"]:
            if prior.addresses == addresses and prior.code_hashes == code_hashes:
                return prior, False
        elif prior is not None and prior.addresses.get("DataMarket"):
            raise InvalidArgument(
                f"{data_dir} already records the market at {prior.addresses['DataMarket']} for "
                f"chain {gw.chain_id}; pass --replace to switch to {addresses['DataMarket']}"
            )
    _write_atomic(path, deployment.to_json())
    return deployment, True


# --- deploying ----------------------------------------------------------------------------


def _adopt(gw: Gateway, entry: Mapping[str, Any]) -> Address | None:
    """The contract a recorded pending deployment created, once its transaction is mined;
    None if it never reached the chain or failed (then it is deployed afresh)."""
    tx_hash = str(entry["tx_hash"])
    what = "a deployment left pending by an interrupted run"
    receipt = gw.request("eth_getTransactionReceipt", [tx_hash], what)
    if receipt is None:
        if gw.request("eth_getTransactionByHash", [tx_hash], what) is None:
            return None  # never sent, or dropped: its nonce is free again
        receipt = gw.wait(tx_hash, what)
    if quantity(receipt["status"]) != 1 or not receipt.get("contractAddress"):
        return None
    address = Address(to_checksum_address(receipt["contractAddress"]))
    return address if gw.has_code(address) else None


def deploy(gw: Gateway, data_dir: Path, redeploy: bool = False) -> tuple[Deployment, list[str]]:
    """Deploy whatever the chain lacks; return the deployment and the keys newly deployed
    (including those an interrupted earlier run deployed and this run adopted).

    Raises ContractNotDeployed when recorded addresses have lost their code (the chain was
    reset) unless ``redeploy`` is set, so a reset never goes unnoticed.
    """
    path = _record_path(data_dir, gw.chain_id)
    addresses: dict[str, Address] = {}
    hashes: dict[str, str] = {}
    code_hashes: dict[str, str] = {}
    pending: dict[str, dict[str, Any]] = {}
    if path.exists():
        prior = load_deployment(data_dir, gw.chain_id)
        body = _read_body(path)
        try:
            pending = {str(k): dict(v) for k, v in dict(body.get("pending", {})).items()}
            for entry in pending.values():
                HexBytes(entry["tx_hash"])
                str(entry["source_hash"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DamagedRecord(
                f"deployment record {path} is damaged (pending: {exc}); delete it, then "
                f"{JOIN_ADVICE}"
            ) from None
        missing = [k for k, a in prior.addresses.items() if not gw.has_code(a)]
        if missing and not redeploy:
            raise ContractNotDeployed(
                f"the contracts recorded for chain {gw.chain_id} in {path} are gone "
                f"({', '.join(missing)} has no code; the node was reset); "
                "run `databright deploy --redeploy` to deploy anew, or join a live market "
                "with `databright join --market ADDRESS --replace`"
            )
        if not missing:
            addresses, hashes = dict(prior.addresses), dict(prior.source_hashes)
            code_hashes = dict(prior.code_hashes)

    def save() -> None:
        body = Deployment(gw.chain_id, addresses, hashes, path, code_hashes).to_json()
        if pending:
            body["pending"] = pending
        _write_atomic(path, body)

    adopted: list[str] = []
    interrupted = bool(pending)
    for key, entry in list(pending.items()):
        found = _adopt(gw, entry)
        pending.pop(key)
        if found is not None:
            addresses[key] = found
            hashes[key] = str(entry["source_hash"])
            code_hashes[key] = _code_hash(gw, found)
            adopted.append(key)
    if interrupted:
        save()

    new: list[str] = []
    for step in PLAN:
        art = load_artifact(step.artifact)
        current = addresses.get(step.key)
        # A dependency adopted now was deployed by the interrupted run; so was this step if it
        # was adopted too (then it was built on that dependency), else it must follow it.
        dependency_changed = any(
            d in new or (d in adopted and step.key not in adopted) for d in step.args
        )
        if (
            current
            and hashes.get(step.key) == art.source_hash
            and not dependency_changed
            and _code_matches(gw, current, step, code_hashes.get(step.key))
        ):
            continue

        def sent(
            tx_hash: str, nonce: int, key: str = step.key, source_hash: str = art.source_hash
        ) -> None:
            pending[key] = {
                "tx_hash": tx_hash,
                "nonce": nonce,
                "address": create_address(gw.address, nonce),
                "source_hash": source_hash,
            }
            save()

        if step.blueprint:
            addresses[step.key] = gw.deploy_blueprint(step.artifact, on_signed=sent)
        else:
            args = (addresses[a] for a in step.args)
            addresses[step.key] = gw.deploy(step.artifact, *args, on_signed=sent).address
        pending.pop(step.key, None)
        hashes[step.key] = art.source_hash
        code_hashes[step.key] = _code_hash(gw, addresses[step.key])
        new.append(step.key)
        save()

    deployment = Deployment(gw.chain_id, addresses, hashes, path, code_hashes)
    return deployment, [s.key for s in PLAN if s.key in new or s.key in adopted]
