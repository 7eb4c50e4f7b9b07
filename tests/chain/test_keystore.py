"""Encrypted keystores: create, list in order, resolve, decrypt; every refusal in one sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner

from databright.chain.keystore import Keystore
from databright.cli import app
from databright.errors import KeystoreError, NotFound, WrongPassword

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


# --- damaged and altered files: reported, never renumbering, never signing ----------------------

KEYS = ["0x" + f"{n:02x}" * 32 for n in range(0x11, 0x16)]


def _write(directory: Path, index: int, key: str, password: str = "pw") -> Path:
    """A keystore file as ``Keystore.new`` names it, with light scrypt (fast tests)."""
    directory.mkdir(parents=True, exist_ok=True)
    acct = Account.from_key(key)
    path = directory / f"{index:04d}--{acct.address}.json"
    path.write_text(json.dumps(dict(Account.encrypt(acct.key, password, iterations=2))))
    return path


def _store(tmp_path: Path, count: int = 5) -> tuple[Keystore, list[Path]]:
    ks = Keystore(tmp_path / "keystore")
    return ks, [_write(ks.directory, i, KEYS[i]) for i in range(count)]


def _address(key: str) -> str:
    return str(Account.from_key(key).address)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ("{not json", "it is not JSON"),
        ("[]", "no encrypted key"),
        ('{"address": "zz", "crypto": {}}', "its address field is not an address"),
    ],
)
def test_a_damaged_middle_file_keeps_its_number_and_is_reported(
    tmp_path: Path, damage: str, why: str
) -> None:
    ks, paths = _store(tmp_path)
    paths[2].write_text(damage)
    # The later accounts keep their numbers: #3 is still the fourth key, never the fifth.
    for i in (0, 1, 3, 4):
        assert ks.resolve(i) == _address(KEYS[i])
        assert ks.load(i, "pw").address == _address(KEYS[i])
    assert ks.resolve(_address(KEYS[4])) == _address(KEYS[4])
    # The damaged one is refused in one sentence naming the file and what to do.
    for which in (2, "2", _address(KEYS[2])):
        with pytest.raises(KeystoreError, match=rf"keystore file .*{paths[2].name}.*{why}") as ei:
            ks.load(which, "pw")
        assert "restore it from a backup" in str(ei.value)
    # Listing shows it in place instead of dropping it; addresses() refuses to hide it.
    entries = ks.entries()
    assert [e.index for e in entries] == [0, 1, 2, 3, 4]
    assert entries[2].damaged and entries[2].address is None and entries[2].path == paths[2]
    assert [e.address for e in entries if not e.damaged] == [
        _address(KEYS[i]) for i in (0, 1, 3, 4)
    ]
    assert len(ks.problems()) == 1 and paths[2].name in ks.problems()[0]
    with pytest.raises(KeystoreError, match=paths[2].name):
        ks.addresses()
    # A new account takes the next free number; it never reuses or shifts one.
    made = ks.new("pw", private_key=KEYS[0].replace("11", "77"))
    assert ks.resolve(5) == made and ks.resolve(3) == _address(KEYS[3])


def test_a_removed_file_does_not_renumber_the_others(tmp_path: Path) -> None:
    ks, paths = _store(tmp_path, 4)
    paths[1].unlink()
    assert ks.addresses() == [_address(KEYS[i]) for i in (0, 2, 3)]
    assert ks.resolve(3) == _address(KEYS[3])
    with pytest.raises(NotFound, match="there is no account #1"):
        ks.load(1, "pw")
    assert ks.new("pw", private_key=KEYS[4]) == ks.resolve(4)


def test_a_file_whose_name_and_address_field_disagree_is_damaged(tmp_path: Path) -> None:
    ks, paths = _store(tmp_path, 3)
    body = json.loads(paths[1].read_text())
    body["address"] = _address(KEYS[2]).removeprefix("0x").lower()
    paths[1].write_text(json.dumps(body))
    with pytest.raises(KeystoreError, match=rf"its name says {_address(KEYS[1])} but its address field says {_address(KEYS[2])}"):  # fmt: skip
        ks.load(1, "pw")
    assert ks.load(2, "pw").address == _address(KEYS[2])


def test_an_edited_address_is_refused_by_index_and_by_address(tmp_path: Path) -> None:
    """File #0 renamed and edited to claim account A while holding B's key: nothing is signed."""
    ks, paths = _store(tmp_path, 2)
    claimed, real = _address(KEYS[3]), _address(KEYS[0])
    body = json.loads(paths[0].read_text())
    body["address"] = claimed.removeprefix("0x").lower()
    paths[0].unlink()
    forged = ks.directory / f"0000--{claimed}.json"
    forged.write_text(json.dumps(body))
    assert ks.resolve(0) == claimed  # what the file claims, until its key is checked
    for which in (0, "0", claimed, claimed.lower()):
        with pytest.raises(
            KeystoreError,
            match=rf"keystore file .*{forged.name} claims address {claimed} but its key is for "
            rf"{real}; the file was altered — do not use it",
        ):
            ks.load(which, "pw")
    assert ks.load(1, "pw").address == _address(KEYS[1])


def test_two_files_with_one_number_are_refused_for_that_number_only(tmp_path: Path) -> None:
    ks, _ = _store(tmp_path, 2)
    _write(ks.directory, 1, KEYS[2])
    with pytest.raises(KeystoreError, match=r"account #1 has 2 keystore files"):
        ks.load(1, "pw")
    assert ks.load(0, "pw").address == _address(KEYS[0])
    assert ks.load(_address(KEYS[2]), "pw").address == _address(KEYS[2])
    with pytest.raises(KeystoreError, match=r"account #1 has 2 keystore files"):
        ks.addresses()


def test_a_damaged_crypto_section_is_not_blamed_on_the_password(tmp_path: Path) -> None:
    ks, paths = _store(tmp_path, 1)
    body = json.loads(paths[0].read_text())
    body["crypto"]["kdf"] = "rot13"
    paths[0].write_text(json.dumps(body))
    with pytest.raises(
        KeystoreError, match=r"is damaged: .*rot13.*restore it from a backup"
    ) as hit:
        ks.load(0, "pw")
    # damage is not a password problem: the CLI prompts for a password only on WrongPassword
    assert not isinstance(hit.value, WrongPassword)
    _write(ks.directory, 1, KEYS[1])
    with pytest.raises(
        WrongPassword, match=r"cannot decrypt the keystore of .*DATABRIGHT_PASSWORD"
    ):
        ks.load(1, "wrong")


def test_account_list_shows_a_damaged_file_in_place(tmp_path: Path) -> None:
    _, paths = _store(tmp_path / "dd", 4)
    args = ["account", "list", "--data-dir", str(tmp_path / "dd")]
    healthy = CliRunner().invoke(app, args)
    assert healthy.exit_code == 0 and "warning" not in healthy.output
    assert "0 *" in healthy.stdout and all(_address(k) in healthy.stdout for k in KEYS[:4])

    paths[2].write_text("{not json")
    listed = CliRunner().invoke(app, [*args, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert [r["address"] for r in rows] == [_address(KEYS[0]), _address(KEYS[1]), None, _address(KEYS[3])]  # fmt: skip
    assert "damaged" in rows[2] and "damaged" not in rows[3] and rows[0]["selected"]
    assert "warning:" in listed.stderr and paths[2].name in listed.stderr
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0 and "damaged" in table.stdout and _address(KEYS[3]) in table.stdout
    refused = CliRunner().invoke(app, [*args, "-a", "2"])
    assert isinstance(refused.exception, KeystoreError)
    assert "is damaged" in str(refused.exception)
