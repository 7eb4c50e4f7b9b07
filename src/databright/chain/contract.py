"""A deployed contract seen through a gateway: views, transactions and logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from eth_abi import encode as abi_encode

from databright.chain.abi import ABIMismatch, Function
from databright.chain.artifacts import Artifact
from databright.chain.events import Event, EventDecoder, Receipt
from databright.errors import ChainError
from databright.types import Address

if TYPE_CHECKING:
    from databright.chain.gateway import Gateway, Submitted

__all__ = ["ContractClient"]


class ContractClient:
    """A deployed contract: ``call`` for views, ``transact`` for state changes."""

    def __init__(self, gateway: Gateway, artifact: Artifact, address: Address) -> None:
        self.gateway = gateway
        self.artifact = artifact
        self.address = address
        self.decoder = EventDecoder(address, artifact.abi)
        self._functions: dict[tuple[str, int], Function] = {}
        gateway.reverts.add(artifact.abi)

    @property
    def contract_name(self) -> str:
        # Not ``name``: ERC-20 clients have a ``name()`` contract function.
        return self.artifact.name

    def _function(self, fn: str, nargs: int) -> Function:
        """The ABI of ``fn`` called with ``nargs`` arguments (resolves the overloads Vyper
        emits for default arguments), prepared once per client."""
        key = (fn, nargs)
        found = self._functions.get(key)
        if found is None:
            entries = [
                e for e in self.artifact.abi if e.get("type") == "function" and e["name"] == fn
            ]
            if not entries:
                raise ChainError(f"{self.contract_name} has no function {fn!r}")
            matching = [e for e in entries if len(e["inputs"]) == nargs]
            if not matching:
                raise ChainError(f"{self.contract_name}.{fn} takes no {nargs} arguments")
            found = Function.of(matching[0])
            self._functions[key] = found
        return found

    def _encode(self, fn: str, args: tuple[Any, ...]) -> tuple[Function, bytes]:
        f = self._function(fn, len(args))
        try:
            return f, f.encode(args)
        except ABIMismatch as exc:
            raise ChainError(
                f"{self.contract_name}.{fn}: the arguments do not fit the contract's ABI ({exc})"
            ) from None

    def call(self, fn: str, *args: Any, block: int | str = "latest") -> Any:
        """A view call, encoded and decoded here (web3's contract layer costs ~10 ms a call)."""
        f, data = self._encode(fn, args)
        what = f"{self.contract_name}.{fn}"
        return self._decode(fn, f, self.gateway.call(self.address, data, block=block, what=what))

    def _decode(self, fn: str, f: Function, result: bytes) -> Any:
        try:
            return f.decode(result)
        except ABIMismatch as exc:
            raise ChainError(
                f"{self.contract_name}.{fn} returned data that does not fit its ABI ({exc}); is "
                f"{self.address} really a {self.contract_name}?"
            ) from None

    def call_many(
        self, calls: Sequence[tuple[str, tuple[Any, ...]]], block: int | str = "latest"
    ) -> list[Any]:
        """Several view calls ``(fn, args)`` in one JSON-RPC batch request, decoded as ``call``
        decodes each."""
        encoded = [(fn, *self._encode(fn, args)) for fn, args in calls]
        what = f"{self.contract_name}." + ",".join(dict.fromkeys(fn for fn, _ in calls))
        results = self.gateway.call_many(
            [(self.address, data) for _, _, data in encoded], block=block, what=what
        )
        return [
            self._decode(fn, f, result) for (fn, f, _), result in zip(encoded, results, strict=True)
        ]

    def transact(self, fn: str, *args: Any, value: int = 0, gas: int | None = None) -> Receipt:
        _, data = self._encode(fn, args)
        return self.gateway.send(
            self.address,
            data,
            value=value,
            gas=gas,
            what=f"{self.contract_name}.{fn}",
            decoder=self.decoder,
        )

    def submit(
        self,
        fn: str,
        *args: Any,
        value: int = 0,
        gas: int | None = None,
        what: str | None = None,
    ) -> Submitted:
        """Send a transaction of ``fn`` without waiting (``Gateway.submit``); await it, with
        others, with ``gateway.wait_many``. ``what`` names it in errors (default
        ``Contract.fn``)."""
        _, data = self._encode(fn, args)
        return self.gateway.submit(
            self.address,
            data,
            value=value,
            gas=gas,
            what=what or f"{self.contract_name}.{fn}",
            decoder=self.decoder,
        )

    def events(
        self, name: str, from_block: int = 0, to_block: int | str = "latest", **filters: Any
    ) -> list[Event]:
        """Logs of event ``name``; keyword filters match indexed arguments exactly."""
        abi = next(
            (e for e in self.artifact.abi if e.get("type") == "event" and e["name"] == name), None
        )
        if abi is None:
            raise ChainError(f"{self.contract_name} has no event {name!r}")
        topics: list[Any] = [self.decoder.topic_of(name)]
        indexed = [i for i in abi["inputs"] if i.get("indexed")]
        unknown = set(filters) - {i["name"] for i in indexed}
        if unknown:
            raise ChainError(
                f"{self.contract_name}.{name} has no indexed argument {unknown.pop()!r}"
            )
        for i in indexed:
            if i["name"] in filters:
                topics.append("0x" + abi_encode([i["type"]], [filters[i["name"]]]).hex())
            else:
                topics.append(None)
        while topics and topics[-1] is None:
            topics.pop()
        logs = self.gateway.logs(
            self.address,
            topics,
            from_block,
            to_block,
            what=f"eth_getLogs {self.contract_name}.{name}",
        )
        return self.decoder.decode(logs)
