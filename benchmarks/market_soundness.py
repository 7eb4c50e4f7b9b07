"""Is the market sound? Who earns, what the curated data is worth, what a proposal costs.

    .venv/bin/python benchmarks/market_soundness.py [--quick] [--seed N] [--verbose]

Drives the real SDK (``databright.market.Market``), the contracts and the evaluator service
(``EvaluatorService``, KNN-Shapley) on anvil (started here on a free port, stopped by its PID)
through a generated market (``soundness_cast.py``) on two data sets: scikit-learn's digits
scaled to [0, 1], and a generated 8-class table of 20 standardised features. Contributors:
honest ones of several sizes; careless ones (10/25/40% wrong labels); copiers (jitter 0.002,
0.02, 0.05, brightness x0.9, a mix of two originals, a copy of a pending proposal, two
overlapping copies sent at once); poisoners (targeted relabel, a backdoor with trigger ->
label 7, a stealthy backdoor: 4 in 32 clean); Sybils (one honest contributor split across 12
accounts, one poisoner split into 10 tiny proposals, each next to its merged twin); an early and
a late honest contributor of equal quality; a contributor of rare classes. Every contributor is
a fresh account funded from an anvil dev account; each pays the evaluation fee and deposit,
the evaluator commits, the chain's clock is moved past the commit and reveal phases
(``Gateway.advance_to``), it reveals, shareholders vote, proposals are finalized, deposits
reclaimed. Then a buyer pays 1 ETH and every holder claims.

Variants (a new dataset each): voters follow the score (yes when score >= 5000 bps); voters
accept everything; a cartel holding 30% of the share weight (topped up before every proposal
from the initiator) and every dishonest shareholder vote yes on the dishonest contributors'
proposals, the others follow the score.

Goals: honest contributors get >= 95% of the contributors' dividends from the payment; a
copier earns <= 10% of what the rows it copied earn their original; a model (KNN, k=5) trained
on the curated (accepted) data is within 1 point of accuracy of one trained on the clean data,
and its backdoor success within 2 points; early/late dividend per example >= 1.2; a Sybil's
split earnings / merged twin's <= 1.0. Gas per proposal: the contributor's own transactions
(commit, propose, reclaim; from receipts), per proposal; the first variant's is the figure
(contributors keep their accounts across variants, so later variants find each manifest root
already owned and pay less for that write). --quick: digits only, the score
variant, smaller Sybils.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chain_throughput import start
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_abi_to_4byte_selector
from sklearn.neighbors import KNeighborsClassifier
from soundness_cast import HONEST_ROLES, Cast, Contribution, build_cast, data_specs

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.errors import ContractReverted, DataBrightError
from databright.market import SHARE_UNIT, Governance, Market
from databright.market.evaluator import EvaluatorService
from databright.storage import DatasetSchema, validate_examples
from databright.types import Wei

ACCEPT_BPS = 5000
PAYMENT_WEI = Wei(10**18)
FUND_WEI = Wei(10**18)
COMMIT_S = REVEAL_S = 60
EVALUATION_FEE_WEI = Wei(10**15)
DEPOSIT_WEI = Wei(10**16)
CARTEL_BPS = 3000
PROPOSE_PATH = ("commit_proposal", "propose", "reclaim_deposit")
VARIANTS = {
    "score": "voters follow the score",
    "all": "voters accept everything",
    "collude": "30% colludes",
}


@dataclass
class Outcome:
    c: Contribution
    proposal_id: int | None = None
    score: int | None = None
    status: str = "refused"
    shares: int = 0
    note: str = ""


@dataclass
class Session:
    data: str
    variant: str
    outcomes: list[Outcome] = field(default_factory=list)
    dividend: dict[str, int] = field(default_factory=dict)  # account name -> wei of the payment
    metrics: list[tuple[str, str, bool | None]] = field(default_factory=list)
    seconds: float = 0.0


class Bench:
    def __init__(self, url: str, dev: list[LocalAccount], data_dir: Path, verbose: bool) -> None:
        self.url, self.data_dir, self.verbose = url, data_dir, verbose
        deploy(connect(url, dev[0]), data_dir)
        self.initiator = Market.connect(url, dev[0], data_dir)
        self.evaluator = self.initiator.as_account(dev[1])
        self.funder = connect(url, dev[2])
        self.accounts: dict[str, LocalAccount] = {}
        self.clients: dict[str, Market] = {}
        market = self.initiator.contract
        self.selectors = {
            bytes(function_abi_to_4byte_selector(f)): f["name"]
            for f in market.artifact.abi
            if f.get("type") == "function"
        }

    def say(self, line: str) -> None:
        if self.verbose:
            print(line, flush=True)

    def account(self, key: str) -> Market:
        """A fresh, funded account per name (the same one across variants of a data set:
        the first proposer of a manifest root owns it in every dataset)."""
        if key not in self.clients:
            acct = Account.create()
            self.funder.transfer(acct.address, FUND_WEI)
            self.accounts[key] = acct
            self.clients[key] = self.initiator.as_account(acct)
        return self.clients[key]

    # --- one dataset, one variant -------------------------------------------------------

    def run(self, cast: Cast, variant: str) -> Session:
        t0 = time.perf_counter()
        spec = cast.spec
        key = lambda name: f"{spec.name}/{name}"  # noqa: E731
        schema = DatasetSchema(task="classification", feature_shape=(spec.X.shape[1],),
                               dtype="float32", labels=spec.labels, name=spec.name)  # fmt: skip
        first_block = self.initiator.gateway.block_number() + 1
        ds = self.initiator.create_dataset(
            f"{spec.name} {variant} #{self.initiator.dataset_count() + 1}",
            schema,
            validate_examples(cast.initial_X, cast.initial_y, schema, source="initial"),
            Governance(voting_period_s=3600, quorum_bps=2000, threshold_bps=5000,
                       evaluators=(self.evaluator.address,), commit_period_s=COMMIT_S,
                       reveal_period_s=REVEAL_S, evaluation_fee_wei=EVALUATION_FEE_WEI,
                       deposit_wei=DEPOSIT_WEI),
        )  # fmt: skip
        evaluator = EvaluatorService(
            self.evaluator, ds,
            validate_examples(cast.val_X, cast.val_y, schema, source="validation"),
        )  # fmt: skip
        token = self.initiator.token(ds)
        dishonest = {key(c.account) for c in cast.contributions if c.role not in HONEST_ROLES}
        cartel = self.account(key("cartel")) if variant == "collude" else None
        voters: dict[str, Market] = {"initiator": self.initiator}
        if cartel:
            voters[key("cartel")] = cartel
        session = Session(spec.name, variant)
        weights: list[float] = []
        for batch in cast.batches:
            if cartel:  # the cartel keeps 30% of the share weight while the initiator can pay
                supply = token.totalSupply()
                need = supply * CARTEL_BPS // 10_000 - token.balanceOf(cartel.address)
                need = min(need, token.balanceOf(self.initiator.address))
                if need > 0:
                    token.transfer(cartel.address, need)
            pending: list[tuple[Outcome, Any]] = []
            for c in batch:
                me = self.account(key(c.account))
                voters[key(c.account)] = me
                out = Outcome(c)
                session.outcomes.append(out)
                try:
                    p = me.propose(ds, validate_examples(c.X, c.y, schema, source=c.name))
                except DataBrightError as exc:
                    out.note = str(exc)
                    self.say(f"  {c.name:16} refused: {exc}")
                    continue
                out.proposal_id = p.id
                pending.append((out, p))
            for out, p in pending:
                out.score = evaluator.evaluate(p).score_bps
            if not pending:
                continue
            gw = self.initiator.gateway
            gw.advance_to(max(p.commit_end for _, p in pending))
            evaluator.reveal_due()
            gw.advance_to(max(p.voting_opens for _, p in pending))
            for out, p in pending:
                self.evaluator.collect_evaluation_fee(p.id)
                by = key(out.c.account)
                colluding = variant == "collude" and by in dishonest
                ranked = sorted(
                    ((token.balance_at(voters[v].address, p.snapshot_block), v)
                     for v in voters),
                    reverse=True,
                )  # fmt: skip
                total = sum(w for w, _ in ranked)
                if cartel and total:
                    weights.append(sum(w for w, v in ranked if v == key("cartel") or v in dishonest)
                                   / total)  # fmt: skip
                for w, v in ranked:
                    if w == 0 or self.initiator.proposal(p.id).outcome != "pending":
                        break
                    if variant == "all" or (colluding and (v == key("cartel") or v in dishonest)):
                        support = True
                    else:
                        support = (out.score or 0) >= ACCEPT_BPS
                    voters[v].vote(p.id, support)
                final = self._finalize(p)
                out.status, out.shares = final.status, final.shares
                if final.status == "accepted" or final.quality_weight_bps > 0:
                    self.clients[by].reclaim_deposit(p.id)
                self.say(f"  {out.c.name:16} {out.c.role:9} score {out.score:6d} -> "
                         f"{final.status:8} {final.shares / SHARE_UNIT:8.2f} shares")  # fmt: skip

        # The buyer's payment, split: what each holder can claim more than before it.
        holders = {"initiator": self.initiator, **{k: v for k, v in voters.items()}}
        before = {k: int(self.initiator.claimable(ds, m.address)) for k, m in holders.items()}
        buyer = Account.create()
        self.funder.transfer(buyer.address, Wei(2 * PAYMENT_WEI))
        self.initiator.as_account(buyer).pay(ds, PAYMENT_WEI)
        for k, m in holders.items():
            session.dividend[k] = int(self.initiator.claimable(ds, m.address)) - before[k]
            if m.claimable(ds) > 0:
                m.claim(ds)
        last_block = self.initiator.gateway.block_number()
        gas = self._gas(first_block, last_block, {m.address: k for k, m in holders.items()})
        curated, _ = self.initiator.download(ds)
        session.seconds = time.perf_counter() - t0
        self._metrics(session, cast, key, curated.X, curated.y, gas, weights)
        return session

    def _finalize(self, p: Any) -> Any:
        gw = self.initiator.gateway
        now = gw.block_timestamp()
        info = self.initiator.proposal(p.id)
        if info.outcome == "pending":
            gw.advance_to(max(info.deadline, now) + 1)
        elif info.settle_from > now:
            gw.advance_to(info.settle_from)
        try:
            return self.initiator.finalize(p.id)
        except ContractReverted:
            gw.advance_to(max(info.deadline, gw.block_timestamp()) + 1)
            return self.initiator.finalize(p.id)

    def _gas(self, first: int, last: int, who: dict[str, str]) -> dict[str, dict[str, int]]:
        """Per account name: gasUsed per method, from the receipts of its own transactions."""
        gw = self.initiator.gateway
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        lower = {a.lower(): k for a, k in who.items()}
        for n in range(first, last + 1):
            block = gw.request("eth_getBlockByNumber", [hex(n), True], "eth_getBlock")
            mine = [t for t in block["transactions"] if t["from"].lower() in lower]
            if not mine:
                continue
            receipts = {
                r["transactionHash"]: int(r["gasUsed"], 16)
                for r in gw.request("eth_getBlockReceipts", [hex(n)], "eth_getBlockReceipts")
            }
            for t in mine:
                data = bytes.fromhex(t["input"][2:])
                name = self.selectors.get(data[:4], "other") if data else "transfer"
                out[lower[t["from"].lower()]][name] += receipts[t["hash"]]
        return out

    # --- figures --------------------------------------------------------------------------

    def _metrics(self, s: Session, cast: Cast, key: Callable[[str], str], cX: Any, cy: Any,
                 gas: dict[str, dict[str, int]], weights: list[float]) -> None:  # fmt: skip
        div = lambda c: s.dividend.get(key(c.account), 0)  # noqa: E731
        contribs = cast.contributions
        accounts = {c.account: c for c in contribs}
        honest = sum(s.dividend.get(key(a), 0) for a, c in accounts.items()
                     if c.role in HONEST_ROLES)  # fmt: skip
        total = sum(s.dividend.get(key(a), 0) for a in accounts)
        share = honest / total if total else math.nan
        m = s.metrics
        m.append(("honest share of dividends", pct(share), share >= 0.95))
        by_name = {c.name: c for c in contribs}
        seen: set[str] = set()
        for c in contribs:
            if c.role != "copier" or c.account in seen:
                continue
            seen.add(c.account)
            rows: dict[str, set[int]] = defaultdict(set)
            for part in [p for p in contribs if p.account == c.account]:
                for orig, r in part.copied:
                    rows[orig].update(r)
            worth = sum(div(by_name[o]) * len(r) / len(by_name[o].y) for o, r in rows.items())
            got = s.dividend.get(key(c.account), 0)
            ratio = got / worth if worth else (0.0 if got == 0 else math.inf)
            label = f"copier {c.account} / its original"
            m.append((label, pct(ratio) + ("" if worth else " (orig 0)"), ratio <= 0.10))
        clean_X, clean_y = cast.clean()
        spec = cast.spec
        acc_cur, bd_cur = model_figures(cX, cy, cast)
        acc_clean, bd_clean = model_figures(clean_X, clean_y, cast)
        m.append(("accuracy curated vs clean",
                  f"{100 * acc_cur:.1f} vs {100 * acc_clean:.1f}",
                  acc_cur >= acc_clean - 0.01))  # fmt: skip
        m.append((f"backdoor success (->{spec.target}) curated vs clean",
                  f"{100 * bd_cur:.1f} vs {100 * bd_clean:.1f}",
                  bd_cur <= bd_clean + 0.02))  # fmt: skip
        early, late = by_name["early"], by_name["late"]
        pe, pl = div(early) / len(early.y), div(late) / len(late.y)
        ratio = pe / pl if pl else (math.inf if pe else math.nan)
        m.append(("early/late dividend per example", f"{ratio:.2f}", ratio >= 1.2))
        for group, twin in (("sybil-honest", "honest-merged"), ("sybil-poison", "poison-merged")):
            split = sum(div(c) for c in contribs if c.group == group and c.name != twin)
            merged = div(by_name[twin])
            r = split / merged if merged else (0.0 if split == 0 else math.inf)
            text = f"{r:.2f}" if merged else f"{split / 1e18:.4f} vs 0 ETH"
            m.append((f"{group} split / merged", text, r <= 1.0))
        path = [sum(gas.get(key(a), {}).get(f, 0) for f in PROPOSE_PATH) for a in accounts]
        n_props = sum(1 for o in s.outcomes if o.proposal_id is not None)
        m.append(("contributor gas per proposal", f"{sum(path) / max(n_props, 1):,.0f}", None))
        allg = sum(sum(v.values()) for a in accounts for v in [gas.get(key(a), {})])
        m.append(("  incl. votes and claims", f"{allg / max(n_props, 1):,.0f}", None))
        if weights:
            m.append(("  colluders' weight at snapshots",
                      f"{pct(min(weights))}-{pct(max(weights))}", None))  # fmt: skip
        acc = sum(1 for o in s.outcomes if o.status == "accepted")
        m.append(("  proposals accepted / made", f"{acc}/{n_props}", None))
        bad = [o for o in s.outcomes if o.proposal_id is not None and o.c.role not in HONEST_ROLES]
        bad_acc = sum(1 for o in bad if o.status == "accepted")
        m.append(("  dishonest proposals accepted", f"{bad_acc}/{len(bad)}", None))


def pct(x: float) -> str:
    return "n/a" if math.isnan(x) else ("inf" if math.isinf(x) else f"{100 * x:.1f}%")


def model_figures(X: Any, y: Any, cast: Cast) -> tuple[float, float]:
    """(test accuracy, backdoor success: triggered non-target test examples predicted target)."""
    model = KNeighborsClassifier(n_neighbors=5).fit(X.reshape(len(X), -1), y)
    acc = float((model.predict(cast.test_X) == cast.test_y).mean())
    other = cast.test_y != cast.spec.target
    hit = model.predict(cast.spec.trigger(cast.test_X[other])) == cast.spec.target
    return acc, float(hit.mean())


GOALS = {
    "honest share of dividends": ">= 95%",
    "accuracy curated vs clean": "within 1 pt",
    "early/late dividend per example": ">= 1.2",
    "sybil-honest split / merged": "<= 1.0",
    "sybil-poison split / merged": "<= 1.0",
}


def goal_of(label: str) -> str:
    if label.startswith("copier"):
        return "<= 10%"
    if label.startswith("backdoor"):
        return "within 2 pt"
    return GOALS.get(label, "")


def print_table(data: str, sessions: list[Session]) -> None:
    w = 26
    print(f"\n{data}: " + "; ".join(f"[{s.variant}] {VARIANTS[s.variant]} ({s.seconds:.0f} s)"
                                    for s in sessions))  # fmt: skip
    head = f"{'figure':44} {'goal':>11} " + " ".join(f"{s.variant:>{w}}" for s in sessions)
    print(head)
    print("-" * len(head))
    labels = list(dict.fromkeys(label for s in sessions for label, _, _ in s.metrics))
    for label in labels:
        cells = []
        for s in sessions:
            value, ok = next(((v, o) for lb, v, o in s.metrics if lb == label), ("", None))
            mark = "" if ok is None else (" met" if ok else " MISSED")
            cells.append(f"{value + mark:>{w}}")
        print(f"{label:44} {goal_of(label):>11} " + " ".join(cells))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="digits, one variant, small Sybils")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help="print every proposal")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    specs = data_specs(args.seed)[:1] if args.quick else data_specs(args.seed)
    variants = ["score"] if args.quick else list(VARIANTS)
    with tempfile.TemporaryDirectory() as tmp:
        url, dev, stop = start("anvil", Path(tmp))
        try:
            bench = Bench(url, dev, Path(tmp), args.verbose)
            for spec in specs:
                cast = build_cast(spec, args.seed, args.quick)
                n = len({c.account for c in cast.contributions})
                print(f"{spec.name}: {n} contributors, {len(cast.contributions)} proposals, "
                      f"{len(cast.initial_y)} initial examples", flush=True)  # fmt: skip
                sessions = []
                for variant in variants:
                    bench.say(f"{spec.name} [{variant}]")
                    sessions.append(bench.run(cast, variant))
                print_table(spec.name, sessions)
        finally:
            stop()
    print(f"\nseed {args.seed}; {time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
