"""The ``databright`` command line: one module per resource of the command tree.

``chain`` (deploy, up), ``demo``, ``evaluate``, ``proposal`` (propose, vote, finalize),
``dividend`` (pay, claim), and the groups ``node``, ``account`` and ``dataset``; what they
share is in ``_common`` (printing, options, reaching the market) and ``_params`` (what an
argument reads).

Every DataBrightError ends the command with one red line on stderr and an exit code that says
what kind of failure it was (see EXIT_CODES); tracebacks are shown only with
``DATABRIGHT_DEBUG=1``.
"""

from __future__ import annotations

import sys

import typer

from databright.cli import account, chain, dataset, demo, dividend, evaluate, node, proposal
from databright.cli._common import err_console, print_error
from databright.errors import (
    ChainError,
    ContractReverted,
    DataBrightError,
    InvalidProposal,
    NodeUnreachable,
    NotFound,
)
from databright.settings import get_settings

__all__ = ["EXIT_CODES", "app", "main"]

# Most specific first: the first matching class decides the exit code.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (NodeUnreachable, 3),
    (ContractReverted, 4),
    (ChainError, 3),
    (NotFound, 5),
    (InvalidProposal, 6),
    (DataBrightError, 1),
)

app = typer.Typer(
    name="databright",
    help="DataBright: curate machine-learning data with markets and trusted computation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# The order here is the order of ``databright --help``.
chain.register(app)
demo.register(app)
evaluate.register(app)
proposal.register(app)
dividend.register(app)
app.add_typer(node.app, name="node")
app.add_typer(account.app, name="account")
app.add_typer(dataset.app, name="dataset")


def _debug() -> bool:
    try:
        return get_settings().debug
    except DataBrightError:  # a malformed environment is itself reported as the error
        return False


def main() -> None:
    try:
        get_settings()  # a malformed DATABRIGHT_* variable is one sentence before anything runs
        app()
    except DataBrightError as exc:
        if _debug():
            raise
        print_error(exc)
        code = next(c for cls, c in EXIT_CODES if isinstance(exc, cls))
        sys.exit(code)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]")
        sys.exit(130)
