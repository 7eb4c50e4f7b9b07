"""Development accounts: created once at genesis, kept as Web3 Secret Storage keystore files.

The password is ``$DATABRIGHT_PASSWORD`` when set, else the documented development password
:data:`DEV_PASSWORD` (``databright-dev``). Files live under ``<data-dir>/keystore/`` as
``dev-NN--<address>.json`` (NN keeps the genesis order), so geth, MetaMask ("import JSON file")
and ``eth_account.Account.decrypt`` all read them.

The key derivation is scrypt with geth's "light" parameters (n=4096, r=8, p=1) instead of the
default n=262144: decrypting ten accounts takes ~0.1 s instead of ~10 s. That buys nothing an
attacker could use here: the accounts only hold play money on a local chain, and by default the
password is public anyway. Never put real funds behind these files.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.errors import NotFound

__all__ = [
    "DEV_PASSWORD",
    "KEYSTORE_DIR",
    "PASSWORD_ENV",
    "create_dev_keys",
    "dev_password",
    "encrypt_dev_key",
    "load_dev_accounts",
    "write_keystore",
]

DEV_PASSWORD = "databright-dev"
PASSWORD_ENV = "DATABRIGHT_PASSWORD"
KEYSTORE_DIR = "keystore"
SCRYPT_N = 4096  # geth's LightScryptN; see the module docstring for why this is fine


def dev_password(password: str | None = None) -> str:
    """The password to use: the argument, else ``$DATABRIGHT_PASSWORD``, else the dev one."""
    if password is not None:
        return password
    return os.environ.get(PASSWORD_ENV) or DEV_PASSWORD


def create_dev_keys(count: int) -> list[LocalAccount]:
    """``count`` fresh random accounts (from the OS's CSPRNG via eth-account)."""
    return [Account.create() for _ in range(count)]


def encrypt_dev_key(account: LocalAccount, password: str) -> dict[str, Any]:
    """The keystore JSON of one dev account, with the light scrypt parameters."""
    return dict(Account.encrypt(account.key, password, kdf="scrypt", iterations=SCRYPT_N))


def _file_name(index: int, keystore: dict[str, Any]) -> str:
    return f"dev-{index:02d}--{str(keystore['address']).lower()}.json"


def write_keystore(data_dir: Path, keystores: Sequence[dict[str, Any]]) -> None:
    """Write keystore files that are missing (each atomically: temp file, then rename)."""
    directory = Path(data_dir) / KEYSTORE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for index, keystore in enumerate(keystores):
        target = directory / _file_name(index, keystore)
        if target.exists():
            continue
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(keystore, fh)
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def load_dev_accounts(data_dir: Path | str, password: str | None = None) -> list[LocalAccount]:
    """Decrypt the dev accounts of a data dir, in genesis order.

    ``password`` defaults to ``$DATABRIGHT_PASSWORD``, else ``databright-dev``. Raises
    :class:`~databright.errors.NotFound` when the data dir has no keystore and ``ValueError``
    (from eth-account) when the password is wrong.
    """
    directory = Path(data_dir) / KEYSTORE_DIR
    files = sorted(directory.glob("dev-*.json")) if directory.is_dir() else []
    if not files:
        raise NotFound(f"no dev accounts under {directory}; start the node once with this data dir")
    secret = dev_password(password)
    accounts: list[LocalAccount] = []
    for path in files:
        keystore = json.loads(path.read_text())
        accounts.append(Account.from_key(Account.decrypt(keystore, secret)))
    return accounts
