"""``databright node`` on a data dir it cannot use, and ``--json`` on every node command: one
sentence (or one JSON object), never a traceback. Run through the real entry point
(``python -m databright.cli``), which answers errors as JSON when ``--json`` is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from node_helpers import free_port


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


def test_node_start_errors_as_json(tmp_path: Path) -> None:
    data_dir = tmp_path / "a-file"
    data_dir.write_text("")
    done = _databright("node", "start", "--data-dir", str(data_dir / "x"), "--json")
    assert done.returncode == 1
    error = json.loads(done.stderr)["error"]
    assert error["type"] == "NodeError" and error["exit_code"] == 1
    assert error["message"].startswith(f"cannot create the data dir {data_dir / 'x'}")


@pytest.mark.slow
def test_every_node_command_takes_json(tmp_path: Path) -> None:
    args = ("--data-dir", str(tmp_path), "--json")
    stopped = _databright("node", "stop", *args)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout) == {"stopped": False, "data_dir": str(tmp_path.resolve())}
    started = _databright("node", "start", *args, "--port", str(free_port()), "--accounts", "1")
    assert started.returncode == 0, started.stderr
    try:
        assert json.loads(started.stdout)["block_number"] == 0
        found = _databright("node", "status", *args)
        assert json.loads(found.stdout)["pid"] == json.loads(started.stdout)["pid"]
    finally:
        stopped = _databright("node", "stop", *args)
    assert json.loads(stopped.stdout) == {"stopped": True, "data_dir": str(tmp_path.resolve())}
    assert json.loads(_databright("node", "status", *args).stdout) is None
