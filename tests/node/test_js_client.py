"""A third real client: ethers 6 under Node.js (tests/node/js/conformance.mjs) against the embedded
node and anvil, so JavaScript dApps are tested, not assumed.

ethers is pinned in .tools/package.json and installed by the Makefile (``make test`` installs it
first); the test is skipped, saying why, only where that install is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from node_helpers import PROBE_ABI, PROBE_BYTECODE

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "js" / "conformance.mjs"
ETHERS = ROOT / ".tools" / "node_modules" / "ethers" / "package.json"


def _node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (the JavaScript client needs it)")
    if not ETHERS.exists():
        pytest.skip("ethers is not in .tools/node_modules; run `make setup` to install it")
    return node


def test_ethers_dapp_steps_pass(node: Any) -> None:
    binary = _node_binary()
    # Accounts 8 and 9 are left to this test: the others' nonces are cached by other tests.
    account, recipient = node.accounts[8], node.accounts[9]
    config = {
        "url": node.url,
        "chainId": node.chain_id,
        "privateKey": account.key.hex()
        if account.key.hex().startswith("0x")
        else "0x" + account.key.hex(),
        "recipient": recipient.address,
        "abi": PROBE_ABI,
        "bytecode": PROBE_BYTECODE,
    }
    done = subprocess.run(
        [binary, str(SCRIPT)],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failures = [f"{s['step']}: {s['detail']}" for s in steps if not s["ok"]]
    assert not failures, "\n".join(failures)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(steps) == 13, done.stdout + done.stderr[-2000:]
