"""``databright access price|buy|status`` (``databright.cli.access``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cli_helpers import SCHEMA, Env, cli, cli_json, write_npz
from eth_account import Account

PRICE_ETH = "0.001"
PRICE_WEI = 10**15


def test_an_initiator_prices_and_an_account_buys_access(
    env: Env, tmp_path: Path, fails: Callable[..., tuple[int, str]]
) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    ds = str(
        cli_json(env, "dataset", "create", "priced", "--schema", str(schema),
                 "--initial", str(write_npz(tmp_path / "i.npz", 8, 201)), "-a", "0")["id"]
    )  # fmt: skip
    assert cli_json(env, "access", "price", ds)["price_wei"] == 0
    assert "is free" in cli(env, "access", "price", ds).stdout

    code, line = fails("access", "price", ds, PRICE_ETH, "-a", "1", *env.opts())
    assert code == 1 and "initiator" in line
    assert cli_json(env, "access", "price", ds, PRICE_ETH)["price_wei"] == PRICE_WEI

    status = cli_json(env, "access", "status", ds, "3")
    assert not status["has_access"] and status["reason"] == "none"
    assert "has no access" in " ".join(cli(env, "access", "status", ds, "3").stdout.split())
    assert cli_json(env, "access", "status", ds, "0")["reason"] == "initiator"

    bought = cli_json(env, "access", "buy", ds, "-a", "3")
    assert bought["paid_wei"] == PRICE_WEI and bought["account"] == env.addresses[3]
    status = cli_json(env, "access", "status", ds, "-a", "3")
    assert status["has_access"] and status["reason"] == "bought" and status["buyers"] == 1
    code, line = fails("access", "buy", ds, "-a", "3", *env.opts())
    assert code == 1 and "already bought" in line

    friend = Account.create().address
    assert friend in cli(env, "access", "buy", ds, "--for", friend, "-a", "2").stdout
    assert cli_json(env, "access", "status", ds, friend)["reason"] == "bought"

    assert "is free" in cli(env, "access", "price", ds, "0").stdout
    code, line = fails("access", "buy", ds, "-a", "2", *env.opts())
    assert code == 1 and "is free" in line


def test_bad_input_is_one_line(env: Env, fails: Callable[..., tuple[int, str]]) -> None:
    code, line = fails("access", "status", "99999", *env.opts())
    assert code == 5 and "dataset 99999 does not exist" in line
    code, line = fails("access", "buy", "99999", *env.opts())
    assert code == 5 and "does not exist" in line
    _, err = fails("access", "price", "1", "abc", usage=True)
    assert "'abc' is not an amount of ETH" in " ".join(err.replace("│", " ").split())
    _, err = fails("access", "status", "1", "0x1234", usage=True)
    assert "is not an Ethereum address" in " ".join(err.replace("│", " ").split())
