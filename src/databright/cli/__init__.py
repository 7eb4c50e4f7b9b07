"""The ``databright`` command line: one module per command group.

Every DataBrightError ends the command with one red line on stderr and an exit code that says
what kind of failure it was (see EXIT_CODES); tracebacks are shown only with
``DATABRIGHT_DEBUG=1``.
"""

from __future__ import annotations

import sys

import typer

from databright.cli import chain as chain_commands
from databright.cli import demo as demo_commands
from databright.cli import evaluate as evaluate_commands
from databright.cli._common import err_console
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
chain_commands.register(app)
demo_commands.register(app)
evaluate_commands.register(app)


def _mount_optional() -> None:
    # Command groups written by other packages register themselves here.
    from databright.cli import account, dataset, market, node

    app.add_typer(node.app, name="node")
    app.add_typer(account.app, name="account")
    app.add_typer(dataset.app, name="dataset")
    market.register(app)


_mount_optional()


def main() -> None:
    try:
        app()
    except DataBrightError as exc:
        if get_settings().debug:
            raise
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        code = next(c for cls, c in EXIT_CODES if isinstance(exc, cls))
        sys.exit(code)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]")
        sys.exit(130)
