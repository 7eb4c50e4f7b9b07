"""The ``databright`` command line: one module per resource of the command tree.

``chain`` (deploy, join, deployment, up), ``demo``, ``evaluate``, ``proposal`` (propose,
vote, finalize), ``dividend`` (pay, claim), and the groups ``node``, ``account`` and
``dataset``; what they share is in ``_common`` (printing, options, reaching the market) and
``_params`` (what an argument reads). Options that hold for every command come before it:
``databright [--version] [--password-file FILE] [--rpc-timeout S] COMMAND ...``.

Every DataBrightError ends the command with one red line on stderr and an exit code that says
what kind of failure it was (see EXIT_CODES); tracebacks are shown only with
``DATABRIGHT_DEBUG=1``. With ``--json`` anywhere on the command line, a failure is instead one
JSON line on stderr (stdout stays for results), with the same exit code::

    {"error": {"code": "not_found", "exit_code": 5, "type": "NotFound", "message": "..."}}

``code`` is one of ERROR_CODES' names (``usage`` for a malformed command line), ``type`` the
error's class, ``message`` the sentence a person would read.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from databright import __version__
from databright.chain.gateway import set_default_timeout
from databright.cli import (
    access,
    account,
    chain,
    compute,
    dataset,
    demo,
    dividend,
    evaluate,
    federation,
    model,
    node,
    proposal,
    server,
    split,
    store,
)
from databright.cli._common import err_console, print_error
from databright.errors import (
    ChainError,
    ContractReverted,
    DataBrightError,
    InvalidArgument,
    InvalidProposal,
    InvalidProposalId,
    NodeUnreachable,
    NotFound,
)
from databright.settings import get_settings

__all__ = ["ERROR_CODES", "EXIT_CODES", "app", "main"]

# Most specific first: the first matching class decides the exit code.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (NodeUnreachable, 3),
    (ContractReverted, 4),
    (ChainError, 3),
    (NotFound, 5),
    (InvalidProposal, 6),
    # A malformed reference is a malformed command line, as a malformed dataset id is.
    (InvalidProposalId, 2),
    (DataBrightError, 1),
)

#: The ``code`` of a JSON error, by exit code.
ERROR_CODES: dict[int, str] = {
    1: "error",
    2: "usage",
    3: "chain",
    4: "reverted",
    5: "not_found",
    6: "invalid_proposal",
    130: "interrupted",
}

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
server.register(app)
compute.register(app)
app.add_typer(node.app, name="node")
app.add_typer(account.app, name="account")
app.add_typer(dataset.app, name="dataset")
app.add_typer(store.app, name="store")
app.add_typer(model.app, name="model")
app.add_typer(access.app, name="access")
app.add_typer(federation.app, name="federation")
app.add_typer(split.app, name="split")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"databright {__version__}")
        raise typer.Exit()


def read_password_file(path: Path) -> str:
    """The keystore password in ``path``: its first line, without the line break. Never
    printed, not even in an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"password file {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise InvalidArgument(f"cannot read password file {path} ({reason})") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise InvalidArgument(
            f"password file {path} is empty; write the password on its first line"
        )
    return lines[0]


@app.callback()
def _global_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            help="Read the keystore password from the first line of this file "
            "(instead of $DATABRIGHT_PASSWORD).",
            dir_okay=False,
        ),
    ] = None,
    rpc_timeout: Annotated[
        float | None,
        typer.Option(
            "--rpc-timeout",
            envvar="DATABRIGHT_RPC_TIMEOUT",
            min=0.001,
            help="Seconds one request to the node may take before the command gives up "
            "[default: 30].",
        ),
    ] = None,
) -> None:
    """DataBright: curate machine-learning data with markets and trusted computation."""
    if password_file is not None:
        # Settings reads the password from the environment; this process's copy is the only
        # place it goes (a node this command starts inherits it, as it would the variable).
        os.environ["DATABRIGHT_PASSWORD"] = read_password_file(password_file)
    if rpc_timeout is not None:
        set_default_timeout(rpc_timeout)


def _debug() -> bool:
    try:
        return get_settings().debug
    except DataBrightError:  # a malformed environment is itself reported as the error
        return False


def _wants_json(args: list[str]) -> bool:
    """Whether the command line asks for JSON (options end at ``--``)."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _fail(exc: BaseException, message: str, code: int, as_json: bool) -> None:
    if as_json:
        body = {
            "error": {
                "code": ERROR_CODES.get(code, "error"),
                "exit_code": code,
                "type": type(exc).__name__,
                "message": message,
            }
        }
        # ensure_ascii: control characters and ESC reach the terminal as \\u escapes
        sys.stderr.write(json.dumps(body, ensure_ascii=True) + "\n")
    elif isinstance(exc, DataBrightError):
        print_error(exc)
    else:
        err_console.print("[red]interrupted[/red]")
    sys.exit(code)


def main() -> None:
    args = sys.argv[1:]
    as_json = _wants_json(args)
    try:
        get_settings()  # a malformed DATABRIGHT_* variable is one sentence before anything runs
        if not as_json:
            app()
            return
        # Without standalone mode click hands usage errors here, to be answered in JSON.
        code = typer.main.get_command(app).main(
            args=args, prog_name="databright", standalone_mode=False
        )
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Abort as exc:
        _fail(exc, "interrupted", 130, as_json)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        _fail(exc, str(message), int(getattr(exc, "exit_code", 2)), as_json=True)
    except DataBrightError as exc:
        if _debug():
            raise
        code = next(c for cls, c in EXIT_CODES if isinstance(exc, cls))
        _fail(exc, str(exc), code, as_json)
    except KeyboardInterrupt as exc:
        _fail(exc, "interrupted", 130, as_json)
