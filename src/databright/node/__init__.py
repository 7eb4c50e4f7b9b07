"""The embedded development chain: py-evm (through eth-tester) persisted in SQLite, served as
standard Ethereum JSON-RPC over HTTP, so web3.py, the CLI and browser wallets talk to it exactly
as they talk to anvil or geth.

Run it::

    python -m databright.node --data-dir D --host 127.0.0.1 --port 8545 [--chain-id N]
    databright node [run|start|stop|status] ...

or from Python with :func:`serve` (foreground), :func:`start_background` / :func:`stop` /
:func:`status` (detached process), or :class:`Node` (in this process, for tests).

Data dir layout: ``chain.sqlite3`` (the chain; see :mod:`.store`), ``keystore/`` and
``dev-accounts.json`` (dev accounts), ``node.lock`` (held while a node runs), ``node.json`` (pid
and URL of the running node), ``node.log`` (output of a background node).

**Dev accounts.** At first start the node creates ``accounts`` (default 10) random accounts,
funds each with 10,000 ETH in genesis and writes them as Web3 Secret Storage keystores under
``<data-dir>/keystore/``. Their password is ``$DATABRIGHT_PASSWORD`` if set, else the
development password ``databright-dev``. :func:`load_dev_accounts` decrypts them (light scrypt
parameters: fast, and fine for play money; see :mod:`.accounts`).

**Durability.** Every block is committed in one SQLite transaction before the node answers the
request that mined it, so a ``kill -9`` at any moment loses no transaction whose hash or receipt a
client received, and the node resumes from the stored head. SQLite runs in WAL mode with
``synchronous=NORMAL``: a *power loss or OS crash* (not a process crash) can drop the last
blocks committed before it, never corrupt the file.

**Refusals.** The node will not start on a busy port, on a data dir created for another chain
id, on a data dir another node holds, or on a damaged store (garbage file, missing head block):
it raises :class:`~databright.errors.NodeError` / :class:`~databright.errors.StoreCorrupt` with
one sentence saying how to recover, and never silently starts empty.

**Differences from anvil worth knowing.** One block per transaction, mined before the send
returns; a nonce gap is refused ("nonce too high"), not queued. Fork: cancun, like
``anvil --hardfork cancun``. Block timestamps are at least parent + 1 s, so a burst of
transactions runs the chain clock ahead of the wall clock. ``evm_mine``, ``evm_increaseTime`` and
``evm_setNextBlockTimestamp`` work; snapshots (``evm_snapshot``/``evm_revert``) do not. Filters
(``eth_newFilter``...) live in memory, are gone after a restart and, as on geth, are dropped when
nobody polls them for 5 minutes (``NodeConfig.filter_timeout``). ``eth_call`` and
``eth_estimateGas`` take state overrides; ``eth_createAccessList``, ``eth_getBlockReceipts``,
``eth_blobBaseFee`` (always the minimum, 1: no blobs), ``eth_coinbase`` (the zero address) and
``debug_traceTransaction`` with ``{"tracer": "callTracer"}`` (only that tracer) are there.
``eth_getLogs`` reads a log index kept in the store, without holding the node's lock. ``eth_accounts`` is empty and
``eth_sendTransaction`` refused: sign locally. Receipts carry the same fields as anvil's
(``logsBloom`` and block-wide ``logIndex`` included); logs have no ``blockTimestamp``; blocks
report ``totalDifficulty`` 0 and ``extraData`` as 32 zero bytes; the ``pending`` block has a hash.
Errors: reverts are code 3 with ``execution reverted: <reason>`` and the revert data, refusals are
-32000 with geth's wording, bad parameters -32602, unknown methods -32601.
"""

from __future__ import annotations

from .accounts import DEV_PASSWORD, load_dev_accounts
from .backend import DEFAULT_CHAIN_ID
from .process import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Node,
    NodeConfig,
    NodeStatus,
    default_data_dir,
    serve,
    start_background,
    status,
    stop,
)

__all__ = [
    "DEFAULT_CHAIN_ID",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEV_PASSWORD",
    "Node",
    "NodeConfig",
    "NodeStatus",
    "default_data_dir",
    "load_dev_accounts",
    "serve",
    "start_background",
    "status",
    "stop",
]
