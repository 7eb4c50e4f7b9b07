"""Browser tests' tools: Debian's Chromium under Playwright, and a wallet injected into the page.

The wallet is an EIP-1193 provider announced through EIP-6963, as a browser extension would
be; its ``request`` calls into Python (``page.expose_binding``), where a development key signs
with eth-account: sign-in messages (``personal_sign``), typed data (``eth_signTypedData_v4``)
and transactions (``eth_sendTransaction``, sent raw to the real node). Every other method is
forwarded to the node as JSON-RPC. Nothing is mocked but the extension's window.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "InjectedWallet", "browser", "chromium_missing"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

PROVIDER_JS = """
(() => {
  const listeners = {};
  const provider = {
    isDataBrightTestWallet: true,
    async request({ method, params }) {
      const answer = JSON.parse(await window.__databrightWallet(method, JSON.stringify(params ?? [])));
      if (answer.error) {
        const error = new Error(answer.error.message);
        error.code = answer.error.code;
        error.data = answer.error.data;
        throw error;
      }
      return answer.result;
    },
    on(event, fn) { (listeners[event] ??= []).push(fn); },
    removeListener(event, fn) { listeners[event] = (listeners[event] ?? []).filter((f) => f !== fn); },
  };
  const info = Object.freeze({
    uuid: "5b0e6f58-8a7c-4d55-9f0e-1f1b2c3d4e5f",
    name: "DataBright test wallet",
    icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E",
    rdns: "org.databright.testwallet",
  });
  const announce = () => window.dispatchEvent(
    new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
"""


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (make test installs Debian's chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (make setup installs it)"
    return None


class InjectedWallet:
    """What the page's wallet does, in Python: ``account`` signs, ``rpc_url`` answers."""

    def __init__(self, account: LocalAccount, rpc_url: str, chain_id: int) -> None:
        self.account = account
        self.rpc_url = rpc_url
        self.chain_id = chain_id
        self.requests: list[str] = []  # methods the page asked for, in order
        self.errors: list[tuple[str, dict[str, Any]]] = []  # what answered with an error
        self.declining = False  # True: refuse to sign, as a person clicking "Reject" would

    def install(self, page: Any) -> None:
        page.expose_binding("__databrightWallet", self._binding)
        page.add_init_script(PROVIDER_JS)

    def _binding(self, _source: Any, method: str, params_json: str) -> str:
        self.requests.append(method)
        try:
            result = self.handle(method, json.loads(params_json))
        except _RpcError as exc:
            self.errors.append((method, exc.error))
            return json.dumps({"error": exc.error})
        except Exception as exc:  # a wallet bug: say it in the page and in the test's report
            error = {"code": -32603, "message": f"test wallet: {type(exc).__name__}: {exc}"}
            self.errors.append((method, error))
            return json.dumps({"error": error})
        return json.dumps({"result": result})

    def _rpc(self, method: str, params: list[Any]) -> Any:
        body = requests.post(
            self.rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            timeout=30,
        ).json()
        if "error" in body:
            raise _RpcError(body["error"])
        return body["result"]

    def _refuse_unless_willing(self) -> None:
        if self.declining:
            raise _RpcError({"code": 4001, "message": "User rejected the request."})

    def handle(self, method: str, params: list[Any]) -> Any:
        me = self.account.address
        if method in ("eth_requestAccounts", "eth_accounts"):
            return [me]
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "personal_sign":
            self._refuse_unless_willing()
            message = params[0]
            signable = (
                encode_defunct(hexstr=message)
                if message.startswith("0x")
                else encode_defunct(text=message)
            )
            return "0x" + self.account.sign_message(signable).signature.hex().removeprefix("0x")
        if method == "eth_signTypedData_v4":
            self._refuse_unless_willing()
            document = params[1] if isinstance(params[1], dict) else json.loads(params[1])
            signed = self.account.sign_typed_data(full_message=document)
            return "0x" + signed.signature.hex().removeprefix("0x")
        if method == "eth_sendTransaction":
            self._refuse_unless_willing()
            return self._send(params[0])
        return self._rpc(method, params)

    def _send(self, tx: dict[str, Any]) -> str:
        me = self.account.address
        call = {"from": me, "to": tx.get("to"), "data": tx.get("data", "0x")}
        value = int(tx.get("value", "0x0"), 16)
        if value:
            call["value"] = hex(value)
        gas = int(tx["gas"], 16) if "gas" in tx else int(self._rpc("eth_estimateGas", [call]), 16)
        to = tx.get("to")
        signed = self.account.sign_transaction(
            {
                "chainId": self.chain_id,
                "nonce": int(self._rpc("eth_getTransactionCount", [me, "pending"]), 16),
                **({"to": to_checksum_address(to)} if to else {}),
                "data": tx.get("data", "0x"),
                "value": value,
                "gas": gas,
                "gasPrice": int(self._rpc("eth_gasPrice", []), 16),
            }
        )
        raw = "0x" + signed.raw_transaction.hex().removeprefix("0x")
        result: str = self._rpc("eth_sendRawTransaction", [raw])
        return result


class _RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


@contextmanager
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, with a fresh profile; yields a Playwright Browser."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="databright-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1200, "height": 900},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
