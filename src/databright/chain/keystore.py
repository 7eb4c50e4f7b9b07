"""Encrypted account keystores (Web3 Secret Storage JSON files) in ``<data-dir>/keystore``.

Password rule (the same as the embedded node's development accounts): the environment variable
``DATABRIGHT_PASSWORD`` when set, otherwise the development password ``databright-dev``. Accounts
made with the development password are for development chains only; set
``DATABRIGHT_PASSWORD`` (or pass ``password=``) for anything that holds value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from databright.atomic import atomic_write
from databright.errors import KeystoreError, NotFound
from databright.settings import DEV_PASSWORD, get_settings
from databright.types import Address

__all__ = ["DEV_PASSWORD", "Keystore", "default_password"]


def default_password() -> str:
    """``$DATABRIGHT_PASSWORD`` when set, else the development password."""
    return get_settings().keystore_password()


@dataclass(frozen=True)
class Keystore:
    directory: Path

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.iterdir() if p.is_file() and not p.name.startswith(".")
        )

    def addresses(self) -> list[Address]:
        """Accounts in creation order (file names sort by creation)."""
        out = []
        for path in self._files():
            try:
                out.append(
                    Address(
                        to_checksum_address(
                            "0x" + json.loads(path.read_text())["address"].removeprefix("0x")
                        )
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue  # not a keystore file; ignore rather than fail the whole listing
        return out

    def _path_of(self, address: Address) -> Path:
        for path in self._files():
            try:
                body = json.loads(path.read_text())
                if to_checksum_address("0x" + body["address"].removeprefix("0x")) == address:
                    return path
            except (ValueError, KeyError, TypeError):
                continue
        raise NotFound(
            f"no keystore for account {address} in {self.directory}; see `databright account list`"
        )

    def resolve(self, which: str | int) -> Address:
        """An account by index (0 = first created) or by address."""
        known = self.addresses()
        if isinstance(which, int) or str(which).isdigit():
            i = int(which)
            if not 0 <= i < len(known):
                raise NotFound(
                    f"there is no account #{i} in {self.directory} ({len(known)} accounts); "
                    "create one with `databright account new`"
                )
            return known[i]
        if not is_address(which):
            raise KeystoreError(f"{which!r} is not an account index or an Ethereum address")
        address = Address(to_checksum_address(which))
        if address not in known:
            raise NotFound(
                f"no keystore for account {address} in {self.directory}; see `databright account list`"
            )
        return address

    def load(self, which: str | int, password: str | None = None) -> LocalAccount:
        address = self.resolve(which)
        path = self._path_of(address)
        try:
            key = Account.decrypt(
                json.loads(path.read_text()),
                password if password is not None else default_password(),
            )
        except ValueError as exc:
            raise KeystoreError(
                f"cannot decrypt the keystore of {address} ({exc}); check DATABRIGHT_PASSWORD"
            ) from None
        return Account.from_key(key)

    def new(self, password: str | None = None, private_key: str | bytes | None = None) -> Address:
        try:
            acct = Account.from_key(private_key) if private_key is not None else Account.create()
        except (ValueError, TypeError) as exc:
            # eth-account's message names the problem without echoing the key.
            raise KeystoreError(f"that is not a valid private key ({exc})") from None
        body = Account.encrypt(acct.key, password if password is not None else default_password())
        self.directory.mkdir(parents=True, exist_ok=True)
        index = len(self._files())
        path = self.directory / f"{index:04d}--{acct.address}.json"
        atomic_write(path, json.dumps(body), mode=0o600)
        return Address(acct.address)
