"""Development accounts: created once at genesis, kept as Web3 Secret Storage keystore files.

The password is ``$DATABRIGHT_PASSWORD`` when set, else the documented development password
:data:`DEV_PASSWORD` (``databright-dev``). Files live under ``<data-dir>/keystore/`` as
``NNNN--<address>.json``, the naming :class:`databright.chain.keystore.Keystore` uses (so the dev
accounts are its accounts 0..N-1, and accounts made later sort after them); geth, MetaMask
("import JSON file") and ``eth_account.Account.decrypt`` read them too. ``dev-accounts.json``
next to the keystore lists the dev addresses in genesis order.

The key derivation is scrypt with geth's "light" parameters (n=4096, r=8, p=1) instead of the
default n=262144: decrypting ten accounts takes ~0.1 s instead of ~10 s. That buys nothing an
attacker could use here: the accounts only hold play money on a local chain, and by default the
password is public anyway. Never put real funds behind these files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from databright.atomic import atomic_write
from databright.errors import NotFound
from databright.settings import DEV_PASSWORD, get_settings

__all__ = [
    "DEV_ACCOUNTS_FILE",
    "DEV_PASSWORD",
    "KEYSTORE_DIR",
    "create_dev_keys",
    "dev_password",
    "encrypt_dev_key",
    "load_dev_accounts",
    "write_keystore",
]

KEYSTORE_DIR = "keystore"
DEV_ACCOUNTS_FILE = "dev-accounts.json"
SCRYPT_N = 4096  # geth's LightScryptN; see the module docstring for why this is fine


def dev_password(password: str | None = None) -> str:
    """The password to use: the argument, else ``$DATABRIGHT_PASSWORD``, else the dev one."""
    if password is not None:
        return password
    return get_settings().keystore_password()


def create_dev_keys(count: int) -> list[LocalAccount]:
    """``count`` fresh random accounts (from the OS's CSPRNG via eth-account)."""
    return [Account.create() for _ in range(count)]


def encrypt_dev_key(account: LocalAccount, password: str) -> dict[str, Any]:
    """The keystore JSON of one dev account, with the light scrypt parameters."""
    return dict(Account.encrypt(account.key, password, kdf="scrypt", iterations=SCRYPT_N))


def _address(keystore: dict[str, Any]) -> str:
    return str(to_checksum_address("0x" + str(keystore["address"]).removeprefix("0x")))


def write_keystore(data_dir: Path, keystores: Sequence[dict[str, Any]]) -> None:
    """Write the dev keystore files and the address list where they are missing."""
    directory = Path(data_dir) / KEYSTORE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    addresses = [_address(keystore) for keystore in keystores]
    for index, (address, keystore) in enumerate(zip(addresses, keystores, strict=True)):
        target = directory / f"{index:04d}--{address}.json"
        if not target.exists():
            atomic_write(target, json.dumps(keystore), mode=0o600)
    listing = Path(data_dir) / DEV_ACCOUNTS_FILE
    if not listing.exists():
        atomic_write(listing, json.dumps(addresses, indent=2) + "\n", mode=0o600)


def load_dev_accounts(data_dir: Path | str, password: str | None = None) -> list[LocalAccount]:
    """Decrypt the dev accounts of a data dir, in genesis order.

    ``password`` defaults to ``$DATABRIGHT_PASSWORD``, else ``databright-dev``. Raises
    :class:`~databright.errors.NotFound` when the data dir has no keystore and ``ValueError``
    (from eth-account) when the password is wrong.
    """
    data_dir = Path(data_dir)
    listing = data_dir / DEV_ACCOUNTS_FILE
    if not listing.is_file():
        raise NotFound(f"no dev accounts in {data_dir}; start the node once with this data dir")
    addresses = [str(a) for a in json.loads(listing.read_text())]
    by_address = {
        path.stem.rsplit("--", 1)[-1].lower(): path
        for path in (data_dir / KEYSTORE_DIR).glob("*.json")
    }
    secret = dev_password(password)
    accounts: list[LocalAccount] = []
    for address in addresses:
        path = by_address.get(address.lower())
        if path is None:
            raise NotFound(f"the keystore of dev account {address} is missing in {data_dir}")
        keystore = json.loads(path.read_text())
        accounts.append(Account.from_key(Account.decrypt(keystore, secret)))
    return accounts
