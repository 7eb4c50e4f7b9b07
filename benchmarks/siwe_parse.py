"""Reading a Sign-In with Ethereum message: our parser against the library, on honest and on
hostile messages (issue 11 asks for a library; this is why the server keeps its own).

    .venv/bin/python benchmarks/siwe_parse.py [--repeats 20]

``POST /api/v1/auth/siwe`` is open to anyone, so what it costs to refuse a message matters as
much as what it costs to accept one. The peer is ``signinwithethereum`` 5.0.2 (September
2026, the maintained successor of ``siwe``), installed here into ``.venv-siwe/`` without its
dependencies (it pins ``web3<8`` and ``eth-account<0.14``, older than ours; its code runs on
ours) and timed in a subprocess: ``SiweMessage.from_message`` (its default ABNF parser, and
with ``abnf=False`` its regular expression) and then ``verify``. Ours:
:func:`databright.server.api.auth.parse_siwe_message` and the signature's recovery, as the
route does them. Both refuse every hostile message below; the table is the time they take.
Messages are at most 4,096 characters, the route's limit. Printed: the median per message in
milliseconds, and the worst case's ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_DIR = ROOT / ".venv-siwe"
PEER = ["signinwithethereum==5.0.2", "abnf==2.9.1"]

HONEST = """127.0.0.1:8000 wants you to sign in with your Ethereum account:
{address}

Sign in to DataBright.

URI: http://127.0.0.1:8000/
Version: 1
Chain ID: 31337
Nonce: a1b2c3d4e5f6g7h8
Issued At: 2026-12-01T12:00:00.000Z
Expiration Time: 2026-12-01T12:10:00.000Z"""


def messages(address: str) -> dict[str, str]:
    honest = HONEST.format(address=address)
    return {
        "honest sign-in": honest,
        "statement of 3,600 characters": honest.replace(
            "Sign in to DataBright.", "Sign in to DataBright." + " and more" * 400
        ),
        "domain of 3,000 characters": "a" * 3000 + honest[len("127.0.0.1:8000") :],
        "4,000 x 'a' (no message at all)": "a" * 4000,
        "50 resources": honest + "\nResources:" + "".join(f"\n- ipfs://x{i}" for i in range(50)),
    }


PEER_SCRIPT = """
import json, sys, time
from siwe import SiweMessage
cases, signatures, repeats = json.loads(sys.stdin.read())
out = {}
for abnf in (True, False):
    for name, text in cases.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            try:
                SiweMessage.from_message(text, abnf=abnf).verify(signatures[name])
            except Exception:
                pass
            times.append(time.perf_counter() - t0)
            if sum(times) > 20:  # one hostile message may take seconds: enough samples then
                break
        out[("abnf " if abnf else "regex ") + name] = times
print(json.dumps(out))
"""


def peer_ready() -> None:
    if not (PEER_DIR / "siwe").is_dir():
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
        subprocess.run([*pip, "--target", str(PEER_DIR), *PEER], check=True)


def ours(cases: dict[str, str], signatures: dict[str, str], repeats: int) -> dict[str, list[float]]:
    from databright.errors import DataBrightError
    from databright.server.api.auth import _signer, parse_siwe_message

    out: dict[str, list[float]] = {}
    for name, text in cases.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            try:
                parse_siwe_message(text)
                _signer(text, signatures[name])
            except DataBrightError:
                pass
            times.append(time.perf_counter() - t0)
        out[name] = times
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    from eth_account import Account
    from eth_account.messages import encode_defunct

    account = Account.from_key("0x" + "42" * 32)
    cases = messages(account.address)
    signatures = {
        name: "0x"
        + account.sign_message(encode_defunct(text=text)).signature.hex().removeprefix("0x")
        for name, text in cases.items()
    }
    peer_ready()
    mine = ours(cases, signatures, args.repeats)
    run = subprocess.run(
        [sys.executable, "-c", PEER_SCRIPT],
        input=json.dumps([cases, signatures, args.repeats]),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(PEER_DIR), "PATH": "/usr/bin:/bin"},
    )
    theirs = json.loads(run.stdout)
    print(f"median ms per message (parse and verify), {args.repeats} repeats")
    print(f"{'message':<34} {'ours':>8} {'library (ABNF)':>15} {'library (regex)':>16}")
    worst = 0.0
    for name in cases:
        a = statistics.median(mine[name]) * 1000
        b = statistics.median(theirs["abnf " + name]) * 1000
        c = statistics.median(theirs["regex " + name]) * 1000
        worst = max(worst, b / a)
        print(f"{name:<34} {a:>8.3f} {b:>15.1f} {c:>16.1f}")
    print(f"worst case: the library's default parser took {worst:,.0f}x ours")


if __name__ == "__main__":
    main()
