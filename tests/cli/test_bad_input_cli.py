"""Bad input at the edges of the command line (``databright.cli``): nodes that are not nodes,
a node that hangs, URLs without a scheme, JSON errors, exit codes, global options, and strings
from other participants that try to reach a terminal raw."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_helpers import LightScrypt
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

import databright.chain.keystore as keystore_module
from databright import __version__
from databright.chain import gateway as gateway_module
from databright.chain.keystore import Keystore
from databright.cli import main
from databright.cli._common import plain, safe, short_address
from databright.errors import WrongPassword

ADDRESS = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"


@pytest.fixture
def not_a_node() -> Iterator[Callable[[bytes | None], str]]:
    """``serve(body)``: the URL of a real HTTP server answering every POST with ``body``
    (HTTP 200), or hanging when ``body`` is None."""
    servers: list[ThreadingHTTPServer] = []
    release = threading.Event()

    def serve(body: bytes | None) -> str:
        class Page(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                if body is None:
                    release.wait(30)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    release.set()
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _default_timeout() -> Iterator[None]:
    before = gateway_module.DEFAULT_TIMEOUT_S
    yield
    gateway_module.DEFAULT_TIMEOUT_S = before  # --rpc-timeout sets it for the process


def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """``databright ARGS`` through ``main()``: exit code, stdout, stderr."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["databright", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    code = info.value.code
    return (code if isinstance(code, int) else 0), out, err


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<html><body>\x1b]0;owned\x07Welcome</body></html>", "is not JSON-RPC"),
        (b'{"jsonrpc": "2.0", "id": 0, "result": "0xnothex"}', "malformed result"),
        (b'{"jsonrpc": "2.0", "id": 0, "result": {"chain": 1}}', "malformed result"),
        (b"[]", "no result in its answer"),
    ],
    ids=["html", "not-hex", "object", "array"],
)
def test_an_rpc_that_is_not_a_node_is_one_sentence(
    not_a_node: Callable[[bytes | None], str],
    tmp_path: Path,
    fails: Callable[..., tuple[int, str]],
    body: bytes,
    words: str,
) -> None:
    url = not_a_node(body)
    for args in (["dataset", "list"], ["join", "--market", ADDRESS], ["deployment", "show"]):
        code, line = fails(*args, "--rpc", url, "--data-dir", str(tmp_path))
        assert code == 3 and words in line and url in line, line
        assert "Welcome" not in line and "\x1b" not in line


def test_an_rpc_that_hangs_times_out_in_bounded_time(
    not_a_node: Callable[[bytes | None], str],
    monkeypatch: pytest.MonkeyPatch,
    fails: Callable[..., tuple[int, str]],
) -> None:
    url = not_a_node(None)
    started = time.monotonic()
    code, line = fails("--rpc-timeout", "0.5", "dataset", "list", "--rpc", url)
    assert time.monotonic() - started < 10
    assert code == 3 and "did not answer eth_chainId within 0.5 s" in line, line
    assert "--rpc-timeout" in line
    assert gateway_module.DEFAULT_TIMEOUT_S == 0.5
    monkeypatch.setenv("DATABRIGHT_RPC_TIMEOUT", "0.25")
    code, line = fails("dataset", "list", "--rpc", url)
    assert code == 3 and "within 0.25 s" in line, line
    fails("--rpc-timeout", "0", "dataset", "list", usage=True)
    fails("--rpc-timeout", "soon", "dataset", "list", usage=True)


@pytest.mark.parametrize("url", ["127.0.0.1:8545", "localhost:8545", "node.example.org"])
def test_an_rpc_url_without_a_scheme_says_so(
    url: str, tmp_path: Path, fails: Callable[..., tuple[int, str]]
) -> None:
    code, line = fails("dataset", "list", "--rpc", url, "--data-dir", str(tmp_path))
    assert code == 1 and f"write it as http://{url}" in line, line


def test_with_json_errors_are_json_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cases = [
        # (args, exit code, code, words)
        (["dataset", "list", "--rpc", "127.0.0.1:1"], 1, "error", "write it as http://"),
        (["dataset", "list", "--rpc", "http://127.0.0.1:1"], 3, "chain", "no Ethereum node"),
        (["vote", "abc", "--yes"], 2, "usage", "'abc' is not a proposal"),
        (["dataset", "show", "abc"], 2, "usage", "Invalid value for 'dataset'"),
        (["frobnicate"], 2, "usage", "No such command"),
        (["join", str(tmp_path / "none.json")], 5, "not_found", "does not exist"),
    ]
    for args, exit_code, code, words in cases:
        got, out, err = run(capsys, monkeypatch, *args, "--json", "--data-dir", str(tmp_path))
        assert got == exit_code, (args, err)
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        error = json.loads(lines[0])["error"]
        assert (error["code"], error["exit_code"]) == (code, exit_code), error
        assert words in error["message"], error
        assert error["type"]
    # Without --json, the same failure is the one red line.
    got, out, err = run(capsys, monkeypatch, "vote", "abc", "--yes")
    assert got == 2 and err.startswith("error: 'abc' is not a proposal") and not out


def test_a_malformed_proposal_reference_is_a_usage_error_like_a_dataset_id(
    fails: Callable[..., tuple[int, str]],
) -> None:
    assert fails("vote", "one/two", "--yes")[0] == 2
    assert fails("finalize", "x")[0] == 2
    fails("dataset", "show", "x", usage=True)


def test_version(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["databright", "--version"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None)
    assert capsys.readouterr().out.strip() == f"databright {__version__}"


def test_password_file(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fails: Callable[..., tuple[int, str]],
) -> None:
    monkeypatch.setenv("DATABRIGHT_PASSWORD", "")  # restored after the test: the option sets it
    monkeypatch.setattr(keystore_module, "Account", LightScrypt)
    secret = "correct horse battery staple"
    password_file = tmp_path / "pw"
    password_file.write_text(secret + "\n")
    dd = str(tmp_path / "dd")
    code, out, err = run(
        capsys, monkeypatch, "--password-file", str(password_file), "account", "new",
        "--data-dir", dd, "--json",
    )  # fmt: skip
    assert code == 0, err
    assert secret not in out + err
    store = Keystore(Path(dd) / "keystore")
    assert store.load(0, secret).address == json.loads(out)["address"]
    with pytest.raises(WrongPassword):
        store.load(0, secret + "\n")  # the line break is not part of it
    code, line = fails("--password-file", str(tmp_path / "missing"), "account", "list")
    assert code == 5 and "password file" in line and "does not exist" in line
    (tmp_path / "empty").write_text("\n")
    code, line = fails("--password-file", str(tmp_path / "empty"), "account", "list")
    assert code == 1 and "is empty" in line


def test_addresses_are_whole_unless_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from databright.cli import _common

    assert short_address(ADDRESS) == ADDRESS  # pytest's console is not a terminal
    assert short_address(ADDRESS, me=ADDRESS) == "you"
    monkeypatch.setattr(_common, "console", Console(force_terminal=True))
    assert short_address(ADDRESS) == "0x5B38…ddC4"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2J\x1b]0;pwned\x07name", "\\x1b[2J\\x1b]0;pwned\\x07name"),
        ("line\nforged: error", "line\\x0aforged: error"),
        ("\r\u202eevil", "\\x0d\\u202eevil"),
        ("[red]x[/red]", "[red]x[/red]"),
        ("plain é ☃", "plain é ☃"),
    ],
)
def test_safe_shows_what_was_written_and_nothing_else(text: str, shown: str) -> None:
    console = Console(record=True, width=200, force_terminal=True, color_system=None)
    console.print(safe(text), highlight=False, soft_wrap=True)
    assert console.export_text() == shown + "\n"


@given(st.text())
def test_safe_leaves_no_control_character(text: str) -> None:
    import unicodedata

    out = plain(text)
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in out)
    assert "\n" not in safe(text)
    if all(unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp") for c in text):
        assert out == text


def test_an_error_carrying_escapes_reaches_stderr_inert(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    evil = tmp_path / "x\x1b[31mred\nerror: forged"
    code, _, err = run(capsys, monkeypatch, "join", str(evil), "--data-dir", str(tmp_path))
    assert code == 5 and "\x1b" not in err and err.count("\n") == 1, err
    assert "\\x1b[31mred\\x0aerror: forged" in err
