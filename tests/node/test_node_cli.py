"""``databright node`` on a data dir it cannot use, and ``--json`` on every node command: one
sentence (or one JSON object), never a traceback. The refusal runs as a user meets it, through
the real entry point (``python -m databright.cli``); the rest call the same ``main()`` in this
process (each fresh interpreter costs seconds of imports), which answers errors as JSON when
``--json`` is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from node_helpers import free_port, run_main


def _databright(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "databright.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "DATABRIGHT_DEBUG"},
    )


def _unusable_dirs(tmp_path: Path) -> list[tuple[Path, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    # (A data dir that is a file is refused by the option itself: a usage error, exit 2.)
    cases = [(a_file / "chain", "Not a directory")]
    if os.geteuid() != 0:  # root writes anywhere; the permission case needs a normal user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        cases += [(locked / "chain", "Permission denied"), (locked, "Permission denied")]
    return cases


def test_node_start_on_a_data_dir_it_cannot_use_is_one_sentence(tmp_path: Path) -> None:
    for data_dir, reason in _unusable_dirs(tmp_path):
        done = _databright("node", "start", "--data-dir", str(data_dir), "--port", "0")
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: cannot ") and str(data_dir) in line, line
        assert reason in line and line.endswith("pass a --data-dir you can write to"), line
        assert done.stdout == ""


def test_node_start_errors_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "a-file"
    data_dir.write_text("")
    code, out, err = run_main(
        monkeypatch, capsys, "node", "start", "--data-dir", str(data_dir / "x"), "--json"
    )
    assert code == 1 and out == ""
    error = json.loads(err)["error"]
    assert error["type"] == "NodeError" and error["exit_code"] == 1
    assert error["message"].startswith(f"cannot create the data dir {data_dir / 'x'}")


def test_every_node_command_takes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--data-dir", str(tmp_path), "--json")

    def databright(*command: str, status: int = 0) -> object:
        code, out, err = run_main(monkeypatch, capsys, "node", *command, *args)
        assert code == status, (command, code, out, err)
        return json.loads(out)

    assert databright("stop") == {"stopped": False, "data_dir": str(tmp_path.resolve())}
    started = databright("start", "--port", str(free_port()), "--accounts", "1")
    try:
        assert isinstance(started, dict) and started["block_number"] == 0
        found = databright("status")
        assert isinstance(found, dict) and found["pid"] == started["pid"]
    finally:
        stopped = databright("stop")
    assert stopped == {"stopped": True, "data_dir": str(tmp_path.resolve())}
    assert databright("status", status=1) is None  # none runs: JSON null, exit status 1
