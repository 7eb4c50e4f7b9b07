"""The main job (``make run``): a whole market session on the embedded node, run twice."""

from __future__ import annotations

import pytest

from databright.demo import PAYMENT_WEI, run_session
from databright.demo.session import DEPOSIT_WEI, EVALUATION_FEE_WEI


@pytest.fixture
def embedded(node):
    if node.kind != "embedded":
        pytest.skip("the session uses the embedded node's keystore of development accounts")
    return node


def test_session_accepts_honest_and_rejects_bad_data(embedded) -> None:
    s = run_session(embedded.url, embedded.data_dir, seed=7)
    by_role: dict[str, list[dict]] = {}
    for row in s["proposals"]:
        by_role.setdefault(row["role"], []).append(row)
    assert all(r["decision"] == "accepted" and r["shares_minted"] > 0 for r in by_role["honest"])
    for role in ("copier", "poisoner", "careless"):
        [r] = by_role[role]
        assert r["decision"] == "rejected" and r["shares_minted"] == 0 and r["dividend_wei"] == 0
    [copier] = by_role["copier"]
    assert copier["score_bps"] == 0 and "near_duplicate" in copier["flags"]
    # ... of alice's proposal while it was still pending, not of the registry
    assert "'proposal-" in copier["flags"] and "'registry-" not in copier["flags"]
    [poisoner] = by_role["poisoner"]
    assert poisoner["score_bps"] < 0
    paid_out = s["initiator"]["dividend_wei"] + sum(r["dividend_wei"] for r in s["proposals"])
    # A rejected proposal that scored nothing positive forfeits its deposit to the
    # shareholders: here the copier's, the poisoner's and the careless labeller's.
    forfeits = [r for r in s["proposals"] if r["decision"] == "rejected" and r["score_bps"] <= 0]
    assert {r["role"] for r in forfeits} == {"copier", "poisoner", "careless"}
    assert s["deposits_forfeited_wei"] == len(forfeits) * DEPOSIT_WEI
    paid_in = PAYMENT_WEI + s["deposits_forfeited_wei"]
    assert paid_out == s["total_claimed_wei"] and paid_in - paid_out < 100
    assert s["initiator"]["shares"] == 150 * 10**18
    assert s["registry_entries"] == 1 + len(by_role["honest"])
    proposed = [r for r in s["proposals"] if r["proposal"] is not None]
    assert s["evaluation_fees_wei"] == len(proposed) * EVALUATION_FEE_WEI  # sealed, revealed, paid

    # Federated training under the compute round's coordinator: settled on chain, the data
    # owners paid by contribution, the one sending sign-flipped updates least.
    fed = s["federation"]
    assert fed["status"] == "settled" and fed["coordinator"] == s["compute"]["coordinator"]
    payouts = fed["payouts_wei"]
    assert payouts[fed["attacker"]] == min(payouts.values()) and fed["processes"]["all_stopped"]
    # the clients checked the coordinator's software attestation, allowed only as insecure
    assert fed["coordinator_attestation"] == "software" and fed["allowed_as_insecure"]

    # Model splitting as processes: the unsplit weights to the byte, the cheater caught.
    split = s["split"]
    assert split["same_as_unsplit"] and split["processes"]["all_stopped"]
    assert split["cheater"] == split["workers"][1] and split["caught_what"] == "activations"
    assert split["caught_at_step"] == 2
    assert split["coordinator_attestation"] == "software" and split["allowed_as_insecure"]
    # ... as market jobs: every epoch paid both stage workers; the cheater's stake burned.
    assert set(split["paid_per_worker_wei"]) == set(split["workers"])
    assert all(v == 5 * 10**15 for v in split["paid_per_worker_wei"].values())
    slashed = split["slashed"]
    assert slashed["worker"] == split["cheater"] and slashed["amount_wei"] == 5 * 10**16
    assert slashed["stake_left_wei"] == 0 and slashed["evidence_cid"]

    again = run_session(embedded.url, embedded.data_dir, seed=7)
    assert again["dataset_id"] == s["dataset_id"] + 1
