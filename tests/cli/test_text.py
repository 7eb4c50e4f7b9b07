"""What the CLI prints of strings it did not write, and proposal references
(``databright.cli._text``)."""

from __future__ import annotations

import io
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from databright.cli._params import parse_proposal_id
from databright.cli._text import plain, proposal_refs, ref, safe
from databright.errors import NotFound

_UNSAFE = ("Cc", "Cf", "Zl", "Zp")


@given(st.text())
def test_plain_text_holds_no_control_character_and_loses_nothing_else(text: str) -> None:
    out = plain(text)
    assert not any(unicodedata.category(c) in _UNSAFE for c in out)
    # Every other character is kept, in order; each unsafe one becomes a visible escape.
    rest = iter(out)
    assert all(c in rest for c in text if unicodedata.category(c) not in _UNSAFE)
    if not any(unicodedata.category(c) in _UNSAFE for c in text):
        assert out == text


@given(st.text())
def test_safe_text_prints_as_one_inert_line(text: str) -> None:
    buffer = io.StringIO()
    Console(file=buffer, width=10_000, force_terminal=False, color_system=None).print(
        safe(text), highlight=False, soft_wrap=True
    )
    printed = buffer.getvalue()
    assert printed.endswith("\n") and "\n" not in printed[:-1] and "\x1b" not in printed
    # Markup was escaped, not interpreted (rich's escape doubles a trailing backslash).
    assert printed[:-1].rstrip("\\") == plain(text).rstrip("\\")


@given(st.integers(0, 2**224 - 1), st.integers(0, 2**32 - 1))
def test_a_reference_parses_back_to_its_proposal(dataset: int, n: int) -> None:
    pid = (dataset << 32) | n
    assert ref(pid) == f"{dataset}/{n}" and parse_proposal_id(ref(pid)) == pid


def test_errors_name_proposals_by_reference() -> None:
    pid = (3 << 32) | 7
    with (
        pytest.raises(NotFound, match=r"^proposal 3/7 does not exist; 99 stays$"),
        proposal_refs(pid, 99),
    ):
        raise NotFound(f"proposal {pid} does not exist; 99 stays")
