"""Participant queries (``databright.market.queries``) on both nodes, and exports that read back
to the very examples they were written from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.errors import InsufficientFunds, InvalidArgument, InvalidProposal, NotFound
from databright.market import SHARE_UNIT, Governance, Market, queries
from databright.storage import DatasetSchema, read_proposal, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(4,), dtype="float32", labels=tuple(range(10))
)


def _npz(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, X=rng.random((n, 4), dtype=np.float32), y=rng.integers(0, 10, n))
    return path


@pytest.fixture
def market(node, tmp_path: Path) -> Market:
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    return Market.connect(node.url, node.accounts[0], tmp_path)


# --- exports -------------------------------------------------------------------------------

FLOATS = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def _examples(draw: st.DrawFn) -> tuple[DatasetSchema, np.ndarray, np.ndarray]:
    shape = draw(st.sampled_from([(3,), (2, 2)]))
    n = draw(st.integers(1, 12))
    X = draw(hnp.arrays(np.float32, (n, *shape), elements=FLOATS, unique=False))
    kind = draw(st.sampled_from(["int", "str", "regression"]))
    if kind == "int":
        schema = DatasetSchema("classification", shape, "float32", labels=(0, 1, 2))
        y = np.array(draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n)))
    elif kind == "str":
        schema = DatasetSchema("classification", shape, "float32", labels=("cat", "dog"))
        y = np.array(draw(st.lists(st.sampled_from(["cat", "dog"]), min_size=n, max_size=n)))
    else:
        schema = DatasetSchema("regression", shape, "float32")
        y = np.array(draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=n, max_size=n)))
    return schema, X, y


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=_examples(), fmt=st.sampled_from(queries.EXPORT_FORMATS))
def test_an_export_reads_back_to_the_same_examples(
    tmp_path: Path, case: tuple[DatasetSchema, np.ndarray, np.ndarray], fmt: str
) -> None:
    schema, X, y = case
    # Distinct rows: a proposal refuses repeats within itself.
    _, keep = np.unique(X.reshape(len(X), -1), axis=0, return_index=True)
    keep.sort()
    examples = validate_examples(X[keep], y[keep], schema, source="drawn")
    out = queries.export_examples(examples, tmp_path / f"out.{fmt}", fmt)  # type: ignore[arg-type]
    back = read_proposal(out, schema, known_hashes=set())
    assert np.array_equal(back.hashes, examples.hashes)


def test_an_export_never_replaces_a_device_nor_writes_into_nothing(tmp_path: Path) -> None:
    examples = read_proposal(_npz(tmp_path / "a.npz", 3, 1), SCHEMA, known_hashes=set())
    with pytest.raises(InvalidArgument, match="not a regular file"):
        queries.export_examples(examples, "/dev/null", "npz")
    with pytest.raises(InvalidArgument, match="is a directory"):
        queries.export_examples(examples, tmp_path, "csv")
    with pytest.raises(NotFound, match="does not exist"):
        queries.export_examples(examples, tmp_path / "no" / "x.csv", "csv")
    with pytest.raises(InvalidArgument, match="format 'xlsx'"):
        queries.export_examples(examples, tmp_path / "x.xlsx", "xlsx")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


# --- the chain -----------------------------------------------------------------------------


def test_history_across_datasets(market: Market, node, tmp_path: Path) -> None:
    contributor = market.as_account(node.accounts[1])
    payer = market.as_account(node.accounts[2])
    datasets = [
        market.create_dataset(f"q{k}", SCHEMA, _npz(tmp_path / f"i{k}.npz", 6, k)) for k in range(2)
    ]
    proposed = [
        contributor.propose(ds, _npz(tmp_path / f"p{ds}.npz", 3, 10 + ds)) for ds in datasets
    ]
    market.vote(proposed[0].id, True)
    market.vote(proposed[1].id, False)
    assert [int(p.id) for p in queries.proposals_by(market, contributor.address)][-2:] == [
        int(p.id) for p in proposed
    ]
    votes = queries.votes_by(market, market.address)[-2:]
    assert [(int(v.proposal_id), v.support, v.weight) for v in votes] == [
        (int(proposed[0].id), True, 6 * SHARE_UNIT),
        (int(proposed[1].id), False, 6 * SHARE_UNIT),
    ]
    payer.pay(datasets[0], 6 * 10**15)
    owed = market.claimable(datasets[0])  # the pay-out rounds down by a unit at most
    market.claim(datasets[0])
    [paid] = queries.payments(market, datasets[0])
    assert (paid.payer, paid.amount) == (payer.address, 6 * 10**15)
    assert queries.payments(market, datasets[0], payer=market.address) == []
    [claimed] = queries.claims(market, datasets[0], market.address)
    assert claimed.amount == owed and claimed.block_number > paid.block_number
    with pytest.raises(InvalidArgument, match="not an Ethereum address"):
        queries.votes_by(market, "0x1234")


def test_evaluators_granted_and_revoked_by_the_initiator_only(
    market: Market, node, tmp_path: Path
) -> None:
    a1, a2 = node.accounts[1].address, node.accounts[2].address
    ds = market.create_dataset(
        "judged", SCHEMA, _npz(tmp_path / "i.npz", 6, 3),
        Governance(evaluators=(a1,), commit_period_s=60, reveal_period_s=60),
    )  # fmt: skip
    assert queries.evaluators(market, ds) == [a1]
    queries.grant_evaluator(market, ds, a2)
    queries.revoke_evaluator(market, ds, a1)
    assert queries.evaluators(market, ds) == [a2]
    with pytest.raises(InvalidArgument, match="only the initiator"):
        queries.grant_evaluator(market.as_account(node.accounts[1]), ds, a1)
    assert queries.evaluators(market, ds) == [a2]
    with pytest.raises(NotFound):
        queries.evaluators(market, 999)


def test_value_moves_and_refusals(market: Market, node, tmp_path: Path) -> None:
    ds = market.create_dataset("moves", SCHEMA, _npz(tmp_path / "i.npz", 4, 4))
    to = node.accounts[3].address
    queries.transfer_shares(market, ds, to, SHARE_UNIT // 2)
    assert market.shares_of(ds, to) == SHARE_UNIT // 2
    with pytest.raises(InvalidArgument, match="fewer than"):
        queries.transfer_shares(market, ds, to, 5 * SHARE_UNIT)
    with pytest.raises(InvalidArgument, match="must be positive"):
        queries.transfer_shares(market, ds, to, 0)
    fresh = "0x" + "cd" * 20
    before = market.gateway.balance(fresh)
    queries.send_eth(market, fresh, 12345)
    assert market.gateway.balance(fresh) == before + 12345
    with pytest.raises(InsufficientFunds):
        queries.send_eth(market, fresh, 10**30)


def test_check_proposal_stores_nothing_and_spends_nothing(
    market: Market, node, tmp_path: Path
) -> None:
    ds = market.create_dataset(
        "checked", SCHEMA, _npz(tmp_path / "i.npz", 4, 5), Governance(deposit_wei=10**15)
    )
    contributor = market.as_account(node.accounts[1])
    blobs = sorted(p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file())
    nonce = market.gateway.transaction_count(contributor.address)
    checked = queries.check_proposal(
        market, ds, _npz(tmp_path / "p.npz", 3, 6), contributor.address
    )
    assert checked.examples == 3 and checked.payment_wei == 10**15
    assert sorted(p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()) == blobs
    assert market.gateway.transaction_count(contributor.address) == nonce
    p = contributor.propose(ds, tmp_path / "p.npz")
    assert p.data_cid == checked.data_cid and p.manifest_root == checked.manifest_root
    with pytest.raises(InvalidProposal, match="already in dataset"):
        queries.check_proposal(market, ds, tmp_path / "p.npz", contributor.address)
    with pytest.raises(InsufficientFunds, match="holds less"):
        queries.check_proposal(market, ds, _npz(tmp_path / "q.npz", 3, 7), "0x" + "ef" * 20)
