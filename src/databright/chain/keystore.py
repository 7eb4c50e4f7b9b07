"""Encrypted account keystores (Web3 Secret Storage JSON files) in ``<data-dir>/keystore``.

Password rule (the same as the embedded node's development accounts): the environment variable
``DATABRIGHT_PASSWORD`` when set, otherwise the development password ``databright-dev``. Accounts
made with the development password are for development chains only; set
``DATABRIGHT_PASSWORD`` (or pass ``password=``) for anything that holds value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from databright.atomic import atomic_write
from databright.errors import KeystoreError, NotFound, WrongPassword
from databright.settings import DEV_PASSWORD, get_settings
from databright.types import Address

__all__ = ["DEV_PASSWORD", "Keystore", "KeystoreEntry", "default_password"]


def default_password() -> str:
    """``$DATABRIGHT_PASSWORD`` when set, else the development password."""
    return get_settings().keystore_password()


@dataclass(frozen=True)
class KeystoreEntry:
    """One ``NNNN--0xADDRESS.json`` file: account number ``index`` (the file's own prefix).

    ``problem`` is a one-sentence report when the file is damaged; ``address`` is then None.
    """

    index: int
    path: Path
    address: Address | None
    problem: str | None = None

    @property
    def damaged(self) -> bool:
        return self.problem is not None


_ENTRY_NAME = re.compile(r"(\d+)--(.*)")
_ADDRESS_NAME = re.compile(r"(0x[0-9a-fA-F]{40})\.json")


@dataclass(frozen=True)
class Keystore:
    """Account ``N`` is the file named ``NNNN--0xADDRESS.json`` (its own prefix), so a damaged or
    removed file never renumbers the others; files not named ``<digits>--...`` are ignored."""

    directory: Path

    def _numbered(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        out = []
        for path in self.directory.iterdir():
            match = _ENTRY_NAME.fullmatch(path.name)
            if match and path.is_file():
                out.append((int(match.group(1)), path))
        return sorted(out, key=lambda item: (item[0], item[1].name))

    def _damaged(self, index: int, path: Path, why: str) -> KeystoreEntry:
        return KeystoreEntry(
            index,
            path,
            None,
            f"keystore file {path} (account #{index}) is damaged: {why}; restore it from a "
            f"backup or move it out of {self.directory} (the other accounts keep their numbers)",
        )

    def _read(self, index: int, path: Path) -> KeystoreEntry:
        named = _ADDRESS_NAME.fullmatch(path.name.split("--", 1)[1])
        if named is None or not is_address(named.group(1)):
            return self._damaged(index, path, "its name is not NNNN--0xADDRESS.json")
        address = Address(to_checksum_address(named.group(1)))
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            return self._damaged(index, path, f"it cannot be read ({exc})")
        except ValueError:
            return self._damaged(index, path, "it is not JSON")
        crypto = body.get("crypto", body.get("Crypto")) if isinstance(body, dict) else None
        if not isinstance(crypto, dict):
            return self._damaged(index, path, "it has no encrypted key ('crypto' section)")
        if "address" in body:
            claimed = body["address"]
            hex_address = "0x" + claimed.removeprefix("0x") if isinstance(claimed, str) else ""
            if not is_address(hex_address):
                return self._damaged(index, path, "its address field is not an address")
            if to_checksum_address(hex_address) != address:
                return self._damaged(
                    index,
                    path,
                    f"its name says {address} but its address field says "
                    f"{to_checksum_address(hex_address)}",
                )
        return KeystoreEntry(index, path, address)

    def entries(self) -> list[KeystoreEntry]:
        """Every numbered keystore file, damaged ones included, by account number."""
        return [self._read(index, path) for index, path in self._numbered()]

    def problems(self, entries: list[KeystoreEntry] | None = None) -> list[str]:
        """One sentence per damaged file and per account number that several files claim."""
        entries = self.entries() if entries is None else entries
        out = [e.problem for e in entries if e.problem is not None]
        by_index: dict[int, list[KeystoreEntry]] = {}
        for e in entries:
            by_index.setdefault(e.index, []).append(e)
        for index, same in by_index.items():
            if len(same) > 1:
                out.append(self._ambiguous(index, same))
        return out

    def _ambiguous(self, index: int, same: list[KeystoreEntry]) -> str:
        names = ", ".join(e.path.name for e in same)
        return (
            f"account #{index} has {len(same)} keystore files in {self.directory} ({names}); "
            "move all but one of them out"
        )

    def addresses(self) -> list[Address]:
        """The accounts by number; raises :class:`KeystoreError` while any file is damaged or
        two files share a number (``entries()`` lists them anyway)."""
        entries = self.entries()
        problems = self.problems(entries)
        if problems:
            raise KeystoreError(problems[0])
        return [e.address for e in entries if e.address is not None]

    def _entry(self, which: str | int) -> KeystoreEntry:
        """The healthy file of an account by number or by address; refuses damaged ones."""
        entries = self.entries()
        if isinstance(which, int) or str(which).isdigit():
            i = int(which)
            same = [e for e in entries if e.index == i]
            if not same:
                raise NotFound(
                    f"there is no account #{i} in {self.directory} ({len(entries)} accounts); "
                    "create one with `databright account new`"
                )
            if len(same) > 1:
                raise KeystoreError(self._ambiguous(i, same))
            if same[0].problem is not None:
                raise KeystoreError(same[0].problem)
            return same[0]
        if not is_address(which):
            raise KeystoreError(f"{which!r} is not an account index or an Ethereum address")
        address = Address(to_checksum_address(which))
        for e in entries:
            if e.address == address:
                return e
        for e in entries:
            if e.problem is not None and address.lower() in e.path.name.lower():
                raise KeystoreError(e.problem)
        raise NotFound(
            f"no keystore for account {address} in {self.directory}; see `databright account list`"
        )

    def resolve(self, which: str | int) -> Address:
        """An account by number (0 = first created) or by address."""
        address = self._entry(which).address
        assert address is not None  # _entry returns healthy entries only
        return address

    def load(self, which: str | int, password: str | None = None) -> LocalAccount:
        """Decrypt an account; refuses a file whose key is not for the address it claims."""
        entry = self._entry(which)
        address = entry.address
        try:
            body = json.loads(entry.path.read_text(encoding="utf-8"))
            key = Account.decrypt(body, password if password is not None else default_password())
        except ValueError as exc:
            if "MAC mismatch" in str(exc):
                raise WrongPassword(
                    f"cannot decrypt the keystore of {address} ({exc}); check DATABRIGHT_PASSWORD"
                ) from None
            raise KeystoreError(self._damaged(entry.index, entry.path, str(exc)).problem) from None
        except (OSError, KeyError, TypeError, AttributeError, NotImplementedError) as exc:
            raise KeystoreError(
                self._damaged(entry.index, entry.path, f"{type(exc).__name__}: {exc}").problem
            ) from None
        account: LocalAccount = Account.from_key(key)
        wanted = {address}
        if not (isinstance(which, int) or str(which).isdigit()):
            wanted.add(Address(to_checksum_address(str(which))))
        if wanted != {account.address}:
            raise KeystoreError(
                f"keystore file {entry.path} claims address {address} but its key is for "
                f"{account.address}; the file was altered — do not use it"
            )
        return account

    def new(self, password: str | None = None, private_key: str | bytes | None = None) -> Address:
        try:
            acct = Account.from_key(private_key) if private_key is not None else Account.create()
        except (ValueError, TypeError) as exc:
            # eth-account's message names the problem without echoing the key.
            raise KeystoreError(f"that is not a valid private key ({exc})") from None
        body = Account.encrypt(acct.key, password if password is not None else default_password())
        self.directory.mkdir(parents=True, exist_ok=True)
        # After the highest number in use (damaged files included): never reuse a number.
        index = max((i for i, _ in self._numbered()), default=-1) + 1
        path = self.directory / f"{index:04d}--{acct.address}.json"
        atomic_write(path, json.dumps(body), mode=0o600)
        return Address(acct.address)
