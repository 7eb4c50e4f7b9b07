"""``python -m databright.node``: run the embedded node in the foreground.

Test fixtures elsewhere use exactly this command line; on a startup error it prints one line
(``error: ...``) to stderr and exits with status 1. It prints no secrets.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .backend import DEFAULT_CHAIN_ID
from .process import DEFAULT_HOST, DEFAULT_PORT, NodeConfig, default_data_dir, run_from_command_line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m databright.node",
        description="Run the DataBright development chain (JSON-RPC over HTTP).",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="default: $DATABRIGHT_HOME or ./.databright"
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument(
        "--chain-id",
        type=int,
        default=None,
        help=f"for a new data dir (default {DEFAULT_CHAIN_ID}); must match an existing one",
    )
    parser.add_argument("--accounts", type=int, default=10, help="dev accounts made at genesis")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = NodeConfig(
        data_dir=args.data_dir if args.data_dir is not None else default_data_dir(),
        host=args.host,
        port=args.port,
        chain_id=args.chain_id,
        accounts=args.accounts,
    )
    return run_from_command_line(config)


if __name__ == "__main__":
    sys.exit(main())
