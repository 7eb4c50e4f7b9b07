"""Launch anvil (Foundry's node, from the npm package ``@foundry-rs/anvil``) and hold its PID.

``make setup`` installs the package into ``.tools/node_modules``; the platform binary ships
inside it, so we run that binary directly (``npx anvil`` would hide the real PID behind node).
Flags follow DESIGN.md: cancun (prague's per-block cost grows with history here) and
``--prune-history`` (otherwise anvil writes ~250 KB per block under ~/.foundry forever).
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.errors import NodeError
from databright.process import ServerProcess, json_rpc_answers, launch

__all__ = ["ANVIL_MNEMONIC", "AnvilNode", "anvil_accounts", "find_anvil", "start_anvil"]

ROOT = Path(__file__).resolve().parents[2]
# anvil's well-known development mnemonic: its accounts are public and must never hold real value.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


def _platform_package() -> str:
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}[platform.system()]
    machine = {"x86_64": "amd64", "AMD64": "amd64", "arm64": "arm64", "aarch64": "arm64"}[
        platform.machine()
    ]
    return f"anvil-{system}-{machine}"


def find_anvil() -> Path:
    """The anvil binary: $DATABRIGHT_ANVIL, the project's npm install, or anvil on PATH."""
    env = os.environ.get("DATABRIGHT_ANVIL")
    if env:
        return Path(env)
    local = ROOT / ".tools" / "node_modules" / "@foundry-rs" / _platform_package() / "bin" / "anvil"
    if local.exists():
        return local
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise NodeError("anvil is not installed; run `make setup` (installs it from npm into .tools/)")


@dataclass
class AnvilNode:
    """A running anvil: stop it with :meth:`stop` (by its PID, SIGTERM then SIGKILL)."""

    process: ServerProcess
    url: str
    port: int
    chain_id: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        self.process.stop(timeout)


def start_anvil(
    port: int,
    host: str = "127.0.0.1",
    chain_id: int = 31337,
    state_file: Path | None = None,
    accounts: int = 10,
    timeout: float = 30.0,
    log: Path | None = None,
) -> AnvilNode:
    """Start anvil and wait until it answers; its output is appended to ``log`` if given.

    Raises NodeError if it exits during startup (with its last line) or does not answer in time.
    """
    cmd = [
        str(find_anvil()),
        "--host", host,
        "--port", str(port),
        "--chain-id", str(chain_id),
        "--hardfork", "cancun",
        "--prune-history",
        "--accounts", str(accounts),
        "--silent",
    ]  # fmt: skip
    if state_file is not None:
        cmd += ["--state", str(state_file)]
    url = f"http://{host}:{port}"
    process = launch(cmd, name=f"anvil on {host}:{port}", log=log)
    process.wait_ready(json_rpc_answers(url), timeout)
    return AnvilNode(process, url, port, chain_id)


def anvil_accounts(n: int = 10) -> list[LocalAccount]:
    """anvil's prefunded development accounts (derived from its public mnemonic)."""
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)
    ]
