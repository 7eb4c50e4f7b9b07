"""The committed artifacts and generated clients match a fresh compile of contracts/."""

from __future__ import annotations

import pytest
from databright_dev.build import stale_artifacts

from databright.chain.artifacts import artifact_names, load_artifact
from databright.errors import NotFound


def test_artifacts_are_fresh() -> None:
    assert stale_artifacts() == [], "run `make artifacts` and commit the result"


def test_every_artifact_loads_with_abi_and_bytecode() -> None:
    names = artifact_names()
    assert {"DataMarket", "ShareToken"} <= set(names)
    for name in names:
        art = load_artifact(name)
        assert art.abi and art.bytecode.startswith("0x") and art.compiler == "vyper 0.4.3"


def test_unknown_artifact_is_named() -> None:
    with pytest.raises(NotFound, match="no compiled contract named 'Nope'"):
        load_artifact("Nope")
