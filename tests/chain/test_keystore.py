"""Encrypted keystores: create, list in order, resolve, decrypt; every refusal in one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from databright.chain.keystore import Keystore
from databright.errors import KeystoreError, NotFound

KEY = "0x" + "42" * 32


def test_accounts_keep_creation_order_and_decrypt(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "keystore")
    first = ks.new("pw", private_key=KEY)
    second = ks.new("pw")
    assert ks.addresses() == [first, second]
    assert ks.resolve(0) == first and ks.resolve(second.lower()) == second
    assert ks.load(0, "pw").key == Account.from_key(KEY).key
    assert oct((tmp_path / "keystore").iterdir().__next__().stat().st_mode)[-3:] == "600"


def test_wrong_password_is_named(tmp_path: Path) -> None:
    ks = Keystore(tmp_path)
    ks.new("right", private_key=KEY)
    with pytest.raises(
        KeystoreError, match=r"cannot decrypt the keystore of .*DATABRIGHT_PASSWORD"
    ):
        ks.load(0, "wrong")


@pytest.mark.parametrize(
    ("which", "error", "message"),
    [
        ("3", NotFound, "there is no account #3"),
        ("0xnothex", KeystoreError, "is not an account index or an Ethereum address"),
        ("0x" + "11" * 20, NotFound, "no keystore for account"),
    ],
)
def test_unknown_accounts_are_refused(
    tmp_path: Path, which: str, error: type, message: str
) -> None:
    ks = Keystore(tmp_path)
    ks.new("pw", private_key=KEY)
    with pytest.raises(error, match=message):
        ks.resolve(which)


def test_bad_private_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="not a valid private key") as ei:
        Keystore(tmp_path).new("pw", private_key="0xdeadbeef")
    assert "deadbeef" not in str(ei.value)
    assert list(tmp_path.iterdir()) == []


def test_junk_files_do_not_break_listing(tmp_path: Path) -> None:
    ks = Keystore(tmp_path)
    (tmp_path / "notes.txt").write_text("not a keystore")
    address = ks.new("pw", private_key=KEY)
    assert ks.addresses() == [address]
