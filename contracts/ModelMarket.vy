# pragma version ~=0.4.3
# pragma evm-version cancun
# pragma nonreentrancy off
# pragma optimize codesize
"""
@title DataBright Model Market
@custom:contract-name ModelMarket
@license Apache-2.0
@notice The on-chain registry of models trained on the data market's
        datasets, their benchmarks, and the prepaid escrow through which
        predictions are paid. Models are data, never code: on-chain a
        model is the digests of its declarative spec, its checkpoints
        (safetensors) and its model card; the weights never touch the
        chain.

        Content addresses. As in `DataMarket`, every CID is a `bytes32`
        sha2-256 digest; `weights_root` is the Merkle root of a
        checkpoint's chunks that `WeightSale` proves deliveries against
        (empty when the weights are not for sale).

        Terms. A dataset's initiator (`DataMarket.initiator_role`) sets
        its model terms: the training fee, the margin by which a
        checkpoint must beat the dataset's best to replace it, the price
        curve and the benchmark phases. The price per prediction of a
        model whose current version scored `s` basis points of accuracy
        may be at most `base_price + price_slope * s // BPS` (Golden
        Grain's idea: the benchmark on held-out data sets the price
        ceiling); an unbenchmarked version counts as `s = 0`. A change
        of terms applies to later calls only: prices already set stay.

        Training fee. Training a model that is registered here on a
        dataset costs the dataset's training fee, paid with
        `pay_training_fee(dataset, spec)` straight to the dataset's
        share token as a dividend. `register_model` checks that the
        registrant paid it for that (dataset, spec); one payment covers
        the spec for good (new versions and re-registrations of the same
        spec by the same payer pay nothing more).

        Models and versions. Models are numbered from 1, versions of a
        model from 1. Registration publishes version 1; `publish_version`
        adds one, which becomes the served (current) version at once,
        unbenchmarked, so the model's price falls to the unbenchmarked
        cap if it was above. The revenue split (owner, dataset, node, in
        basis points summing to `BPS`) is fixed at registration: the
        dataset's shareholders get `data_bps` of every settlement for as
        long as the model is served. There is no floor on `data_bps`;
        the dataset's own floor is its training fee.

        Benchmarks. Each published version opens a commit phase
        (`commit_period`) then a reveal phase (`reveal_period`). Each
        evaluator of the dataset (`DataMarket.is_evaluator`), never the
        model's owner, may commit once to a score in basis points of
        accuracy on the dataset's held-out test set, which the owner
        never sees, and reveal it with its report's digest afterwards,
        so no evaluator can copy or counter another's score. After the
        reveal phase anyone finalizes: the score is the median of the
        revealed scores, with the data market's rule (`sealed_scores`:
        the mean of the two middle scores, rounded down, for an even
        count), so that one hostile evaluator moves it at most to its
        neighbour's. A version with no reveal is not finalized; its
        owner may reopen both phases (`request_benchmark`). A finalized
        version becomes its dataset's best checkpoint if there is none
        yet or if it beats the best score by more than the dataset's
        margin: noise between evaluations cannot flip the best
        checkpoint back and forth. Evaluators sign with their own keys;
        their execution is not hardware-attested (the computation
        market's attestation interface will add that).

        Payments per prediction. One transaction per prediction would
        cost at least 21,000 gas, more than most predictions are worth.
        So a user deposits into a prepaid escrow per model and signs,
        with each request, an EIP-712 receipt `Receipt(model_id, user,
        total, nonce)`: the cumulative amount owed so far. The serving
        node checks the receipt before answering and settles the latest
        one in a single transaction, whatever the number of predictions
        it covers. Receipts are cumulative, so a later one supersedes
        every earlier one and only the increase over the last settled
        total is paid: a receipt never settles twice (its nonce must
        exceed the last settled nonce and its total the last settled
        total) and the node never takes more than the user signed nor
        more than the user deposited. A receipt's total counts from the
        escrow's first deposit on, across later deposits and
        withdrawals.

        Exit delay. A user who stops may take back what was never
        spent, but only `EXIT_DELAY` after announcing it
        (`start_exit`): the node, which answered on the strength of
        signed receipts, has that long to settle the latest one. A
        receipt cannot be settled once the exit time has passed, and
        a withdrawal leaves nothing a receipt could still claim
        (`deposited = settled`). A new deposit cancels a pending exit.

        Split and rounding. A settlement of `amount` wei pays
        `amount * data_bps // BPS` to the dataset's share token
        (`pay`: a dividend to its shareholders), credits
        `amount * node_bps // BPS` to the node and the rest to the model
        owner, so the rounding remainder (under 2 wei) goes to the owner
        and every wei is accounted for. Earnings are pull payments
        (`withdraw`): a reverting or reentrant receiver cannot block a
        settlement or take twice.

        Revenue views (`training_revenue`, `prediction_revenue`,
        `model_revenue`) give the impact page its totals; the details are
        in the events.

        Storage and gas. A settlement is the one hot path: one escrow is
        two packed words (`[deposited | settled]`, `[nonce | exit_at]`)
        and every word a settlement writes (escrow clock, earnings,
        revenues) is made non-zero with a live bit when it is first
        created (deposit, registration, terms), so the first settlement
        costs what every later one does (~101k gas for any number of
        predictions, the share token's dividend payment included).
@custom:security Every function that moves ether is `@nonreentrant` and
                 follows checks-effects-interactions; the only external
                 calls are to the data market (views) and to its share
                 tokens (`pay`).
"""


# @dev The data market views this contract reads.
from interfaces import IDataMarket


# @dev The share token interface (`pay`).
from interfaces import IShareToken


# @dev We import snekmate's stateless `ecdsa` module to
# recover the signer of a receipt.
from snekmate.utils import ecdsa


# @dev We import and initialise snekmate's EIP-712 domain
# separator module for the receipts.
from snekmate.utils import eip712_domain_separator
initializes: eip712_domain_separator


# @dev We export EIP-5267's `eip712Domain`.
exports: eip712_domain_separator.eip712Domain


# @dev We import and initialise the data market's `sealed_scores`
# module for the evaluators' committed and revealed benchmark
# scores, keyed by `_bench_id(model_id, version)`.
from modules import sealed_scores
initializes: sealed_scores


# @dev Basis points in one (100%).
BPS: public(constant(uint256)) = 10_000


# @dev Seconds between `start_exit` and the earliest
# `withdraw_deposit` (the node's time to settle).
EXIT_DELAY: public(constant(uint256)) = 86_400


# @dev The most commitments per benchmark (as the data market).
MAX_EVALUATORS: public(constant(uint256)) = sealed_scores.MAX_SCORES


# @dev The longest commit or reveal phase in seconds.
MAX_PERIOD: public(constant(uint256)) = 2**32 - 1


# @dev The largest fee, price or price slope in wei.
MAX_PRICE: public(constant(uint256)) = 2**128 - 1


# @dev The most model ids returned by one `dataset_models` page.
MAX_PAGE: public(constant(uint256)) = 64


# @dev The EIP-712 type hash of a receipt.
RECEIPT_TYPEHASH: public(constant(bytes32)) = keccak256(
    "Receipt(uint256 model_id,address user,uint256 total,uint256 nonce)"
)


# @dev The largest `s` of a non-malleable signature (secp256k1
# order / 2), as snekmate's `ecdsa`.
_MALLEABILITY_THRESHOLD: constant(uint256) = (
    57_896_044_618_658_097_711_785_492_504_343_953_926_418_782_139_537_452_191_302_581_570_759_080_747_168
)


# @dev Fields of the packed best checkpoint word.
_BEST_VERSION_SHIFT: constant(uint256) = 32
_BEST_MODEL_SHIFT: constant(uint256) = 128
_MASK_32: constant(uint256) = 2**32 - 1
_MASK_64: constant(uint256) = 2**64 - 1
_MASK_96: constant(uint256) = 2**96 - 1
_MASK_127: constant(uint256) = 2**127 - 1
_MASK_128: constant(uint256) = 2**128 - 1


# @dev Fields of the packed escrow and revenue words.
_HIGH_SHIFT: constant(uint256) = 128


# @dev A set bit that keeps a storage word non-zero once it is
# first written (at registration, deposit or terms), so that the
# first settlement rewrites a slot instead of paying for a fresh
# one (20,000 gas each): the gas of `settle` is then flat.
_LIVE: constant(uint256) = 1 << 255


# @dev A dataset's model terms.
struct Terms:
    training_fee: uint256
    margin_bps: uint256
    base_price: uint256
    price_slope: uint256
    commit_period: uint256
    reveal_period: uint256
    set: bool


# @dev A registered model.
struct Model:
    owner: address
    dataset_id: uint256
    spec_digest: bytes32
    price: uint256
    owner_bps: uint256
    data_bps: uint256
    node_bps: uint256
    node: address
    current_version: uint256
    versions: uint256
    registered_at: uint256


# @dev A published version (checkpoint) of a model and its
# benchmark.
struct Version:
    checkpoint_digest: bytes32
    weights_root: bytes32
    card_digest: bytes32
    published_at: uint256
    commit_deadline: uint256
    reveal_deadline: uint256
    commits: uint256
    reveals: uint256
    benchmarked: bool
    score_bps: uint256


# @dev A user's prepaid escrow for one model. `deposited` is
# the total deposited net of withdrawals, `settled` the total of
# the last settled receipt, `nonce` its nonce, `exit_at` when a
# withdrawal may happen (0: no exit pending).
struct Escrow:
    deposited: uint256
    settled: uint256
    nonce: uint256
    exit_at: uint256


# @dev The data market whose datasets the models are trained on.
market: public(immutable(address))


# @dev The number of models; ids run from 1 to it.
model_count: public(uint256)


# @dev Dataset id => its model terms.
_terms: HashMap[uint256, Terms]


# @dev Dataset id => its share token, cached when terms are
# first set (a dataset's token never changes).
_share_tokens: HashMap[uint256, address]


# @dev Payer => dataset id => spec digest => training fee paid.
_training_paid: HashMap[address, HashMap[uint256, HashMap[bytes32, bool]]]


# @dev Model id => model.
_models: HashMap[uint256, Model]


# @dev Model id => version => version.
_versions: HashMap[uint256, HashMap[uint256, Version]]


# @dev Dataset id => packed best checkpoint
# `[score: 0..31 | version: 32..127 | model id: 128..255]`
# (0: none).
_best: HashMap[uint256, uint256]


# @dev Dataset id => number of models registered on it.
dataset_model_count: public(HashMap[uint256, uint256])


# @dev Dataset id => index => model id.
_dataset_models: HashMap[uint256, HashMap[uint256, uint256]]


# @dev Model id => user => packed escrow amounts
# `[deposited: 0..127 | settled: 128..255]`.
_escrow_amounts: HashMap[uint256, HashMap[address, uint256]]


# @dev Model id => user => packed escrow clock
# `[nonce: 0..127 | exit_at: 128..191 | live bit: 255]`.
_escrow_clocks: HashMap[uint256, HashMap[address, uint256]]


# @dev Account => credited earnings (low 255 bits; live bit set
# for owners and nodes), withdrawn with `withdraw`.
_balances: HashMap[address, uint256]


# @dev Dataset id => packed revenue `[training fees: 0..127 |
# prediction revenue: 128..254 | live bit: 255]` paid to its
# shareholders.
_revenues: HashMap[uint256, uint256]


# @dev Model id => total settled for its predictions (with the
# live bit).
_model_revenues: HashMap[uint256, uint256]


# @dev Emitted when a dataset's initiator sets its model terms.
event TermsSet:
    dataset_id: indexed(uint256)
    training_fee: uint256
    margin_bps: uint256
    base_price: uint256
    price_slope: uint256
    commit_period: uint256
    reveal_period: uint256


# @dev Emitted when a training fee is paid to a dataset.
event TrainingFeePaid:
    dataset_id: indexed(uint256)
    payer: indexed(address)
    spec_digest: bytes32
    amount: uint256


# @dev Emitted when a model is registered.
event ModelRegistered:
    model_id: indexed(uint256)
    dataset_id: indexed(uint256)
    owner: indexed(address)
    spec_digest: bytes32
    price: uint256
    owner_bps: uint256
    data_bps: uint256
    node_bps: uint256
    node: address


# @dev Emitted when a version is published (version 1 with the
# registration); its benchmark commit phase opens.
event VersionPublished:
    model_id: indexed(uint256)
    version: uint256
    checkpoint_digest: bytes32
    weights_root: bytes32
    card_digest: bytes32
    commit_deadline: uint256
    reveal_deadline: uint256


# @dev Emitted when a model's price per prediction changes.
event PriceSet:
    model_id: indexed(uint256)
    price: uint256


# @dev Emitted when a model's serving node changes.
event NodeSet:
    model_id: indexed(uint256)
    node: address


# @dev Emitted when an evaluator commits to a benchmark score.
event BenchmarkCommitted:
    model_id: indexed(uint256)
    version: uint256
    evaluator: indexed(address)


# @dev Emitted when an evaluator reveals its benchmark score.
event BenchmarkRevealed:
    model_id: indexed(uint256)
    version: uint256
    evaluator: indexed(address)
    score_bps: uint256
    report_digest: bytes32


# @dev Emitted when a benchmark without reveals is reopened.
event BenchmarkRequested:
    model_id: indexed(uint256)
    version: uint256
    commit_deadline: uint256
    reveal_deadline: uint256


# @dev Emitted when a benchmark is finalized.
event BenchmarkFinalized:
    model_id: indexed(uint256)
    version: uint256
    score_bps: uint256


# @dev Emitted when a version becomes its dataset's best
# checkpoint.
event BestCheckpoint:
    dataset_id: indexed(uint256)
    model_id: uint256
    version: uint256
    score_bps: uint256


# @dev Emitted for each deposit into an escrow; `deposited` is
# the escrow's net deposit after it.
event Deposited:
    model_id: indexed(uint256)
    user: indexed(address)
    amount: uint256
    deposited: uint256


# @dev Emitted when a receipt is settled.
event Settled:
    model_id: indexed(uint256)
    user: indexed(address)
    node: indexed(address)
    amount: uint256
    total: uint256
    nonce: uint256
    owner_amount: uint256
    data_amount: uint256
    node_amount: uint256


# @dev Emitted when a user announces an exit.
event ExitStarted:
    model_id: indexed(uint256)
    user: indexed(address)
    exit_at: uint256


# @dev Emitted when the unspent deposit is paid back.
event DepositWithdrawn:
    model_id: indexed(uint256)
    user: indexed(address)
    amount: uint256


# @dev Emitted when credited earnings are withdrawn.
event Withdrawn:
    account: indexed(address)
    amount: uint256


@deploy
def __init__(data_market: address):
    """
    @dev Binds the model market to a data market and sets up the
         EIP-712 domain of the receipts.
    @param data_market The 20-byte address of the `DataMarket`.
    """
    assert data_market.is_contract, "model_market: data market is not a contract"
    market = data_market
    eip712_domain_separator.__init__("DataBright ModelMarket", "1")


@external
def set_terms(
    dataset_id: uint256,
    training_fee: uint256,
    margin_bps: uint256,
    base_price: uint256,
    price_slope: uint256,
    commit_period: uint256,
    reveal_period: uint256,
):
    """
    @dev Sets a dataset's model terms: the training fee, the
         margin to replace the best checkpoint, the price curve
         `base_price + price_slope * score // BPS` and the benchmark
         phases.
    @notice Only the dataset's initiator. Applies to later calls:
            prices and open benchmark phases already set stay.
    @param dataset_id The 32-byte dataset id.
    @param training_fee The wei paid per (payer, spec) to train a
           registered model on the dataset (at most `MAX_PRICE`).
    @param margin_bps The basis points of score by which a new
           checkpoint must beat the best (at most `BPS`).
    @param base_price The price cap in wei of an unbenchmarked
           model (at most `MAX_PRICE`).
    @param price_slope The extra wei per prediction at a perfect
           score (at most `MAX_PRICE`).
    @param commit_period The seconds evaluators may commit (1 to
           `MAX_PERIOD`).
    @param reveal_period The seconds evaluators may then reveal (1
           to `MAX_PERIOD`).
    """
    dm: IDataMarket = IDataMarket(market)
    assert staticcall dm.hasRole(staticcall dm.initiator_role(dataset_id), msg.sender), "model_market: not the initiator"
    assert margin_bps <= BPS, "model_market: invalid margin"
    assert training_fee <= MAX_PRICE and base_price <= MAX_PRICE and price_slope <= MAX_PRICE, "model_market: invalid price"
    assert commit_period != 0 and commit_period <= MAX_PERIOD, "model_market: invalid periods"
    assert reveal_period != 0 and reveal_period <= MAX_PERIOD, "model_market: invalid periods"
    if self._share_tokens[dataset_id] == empty(address):
        self._share_tokens[dataset_id] = staticcall dm.share_token(dataset_id)
        self._revenues[dataset_id] = _LIVE
    self._terms[dataset_id] = Terms(
        training_fee=training_fee,
        margin_bps=margin_bps,
        base_price=base_price,
        price_slope=price_slope,
        commit_period=commit_period,
        reveal_period=reveal_period,
        set=True,
    )
    log TermsSet(
        dataset_id=dataset_id,
        training_fee=training_fee,
        margin_bps=margin_bps,
        base_price=base_price,
        price_slope=price_slope,
        commit_period=commit_period,
        reveal_period=reveal_period,
    )


@external
@payable
@nonreentrant
def pay_training_fee(dataset_id: uint256, spec_digest: bytes32):
    """
    @dev Pays the dataset's training fee for the caller's spec,
         as a dividend to the dataset's shareholders.
    @notice `msg.value` must equal the fee; once per (payer,
            dataset, spec). Effects before the payment.
    @param dataset_id The 32-byte dataset id.
    @param spec_digest The 32-byte CID digest of the model spec.
    """
    terms: Terms = self._terms[dataset_id]
    assert terms.set, "model_market: no terms"
    assert spec_digest != empty(bytes32), "model_market: empty digest"
    assert not self._training_paid[msg.sender][dataset_id][spec_digest], "model_market: training fee already paid"
    assert msg.value == terms.training_fee, "model_market: wrong training fee"
    self._training_paid[msg.sender][dataset_id][spec_digest] = True
    revenue: uint256 = self._revenues[dataset_id]
    # Keep the sum in its field (no ether supply reaches it).
    assert (revenue & _MASK_128) + msg.value <= _MASK_128, "model_market: revenue overflow"
    self._revenues[dataset_id] = revenue + msg.value
    log TrainingFeePaid(dataset_id=dataset_id, payer=msg.sender, spec_digest=spec_digest, amount=msg.value)
    if msg.value != 0:
        extcall IShareToken(self._share_tokens[dataset_id]).pay(value=msg.value)


@external
@view
def training_paid(payer: address, dataset_id: uint256, spec_digest: bytes32) -> bool:
    """
    @dev Returns whether `payer` paid the dataset's training fee
         for a spec.
    @param payer The 20-byte payer address.
    @param dataset_id The 32-byte dataset id.
    @param spec_digest The 32-byte CID digest of the model spec.
    @return bool `True` if paid.
    """
    return self._training_paid[payer][dataset_id][spec_digest]


@external
def register_model(
    dataset_id: uint256,
    spec_digest: bytes32,
    checkpoint_digest: bytes32,
    weights_root: bytes32,
    card_digest: bytes32,
    price: uint256,
    owner_bps: uint256,
    data_bps: uint256,
    node_bps: uint256,
    node: address,
) -> uint256:
    """
    @dev Registers a model trained on `dataset_id`, owned by the
         caller, and publishes its version 1, whose benchmark commit
         phase opens now.
    @notice The caller must have paid the dataset's training fee
            for the spec. The dataset's shareholders receive
            `data_bps` of every settlement, the node `node_bps`,
            the owner the rest; the split cannot change later.
    @param dataset_id The 32-byte dataset id.
    @param spec_digest The 32-byte CID digest of the model spec.
    @param checkpoint_digest The 32-byte CID digest of the
           checkpoint (safetensors).
    @param weights_root The 32-byte Merkle root of the weights'
           chunks (empty: not for sale).
    @param card_digest The 32-byte CID digest of the model card.
    @param price The wei per prediction (at most the dataset's
           `base_price`: an unbenchmarked model's cap).
    @param owner_bps The owner's part in basis points.
    @param data_bps The dataset's part in basis points.
    @param node_bps The serving node's part in basis points.
    @param node The 20-byte address of the serving node.
    @return uint256 The id of the new model.
    """
    assert self._training_paid[msg.sender][dataset_id][spec_digest], "model_market: training fee not paid"
    assert checkpoint_digest != empty(bytes32) and card_digest != empty(bytes32), "model_market: empty digest"
    assert owner_bps + data_bps + node_bps == BPS, "model_market: invalid split"
    assert node != empty(address), "model_market: zero node"
    assert price <= self._terms[dataset_id].base_price, "model_market: price above cap"

    model_id: uint256 = self.model_count + 1
    self.model_count = model_id
    self._models[model_id] = Model(
        owner=msg.sender,
        dataset_id=dataset_id,
        spec_digest=spec_digest,
        price=price,
        owner_bps=owner_bps,
        data_bps=data_bps,
        node_bps=node_bps,
        node=node,
        current_version=0,
        versions=0,
        registered_at=block.timestamp,
    )
    self._model_revenues[model_id] = _LIVE
    self._balances[msg.sender] |= _LIVE
    self._balances[node] |= _LIVE
    index: uint256 = self.dataset_model_count[dataset_id]
    self._dataset_models[dataset_id][index] = model_id
    self.dataset_model_count[dataset_id] = index + 1
    log ModelRegistered(
        model_id=model_id,
        dataset_id=dataset_id,
        owner=msg.sender,
        spec_digest=spec_digest,
        price=price,
        owner_bps=owner_bps,
        data_bps=data_bps,
        node_bps=node_bps,
        node=node,
    )
    self._publish(model_id, dataset_id, checkpoint_digest, weights_root, card_digest)
    return model_id


@external
def publish_version(
    model_id: uint256, checkpoint_digest: bytes32, weights_root: bytes32, card_digest: bytes32
) -> uint256:
    """
    @dev Publishes a new checkpoint of a model; it becomes the
         served version at once, unbenchmarked, and its benchmark
         commit phase opens now.
    @notice Only the model's owner. The price falls to the
            dataset's `base_price` if it was above (`PriceSet`).
    @param model_id The 32-byte model id.
    @param checkpoint_digest The 32-byte CID digest of the
           checkpoint (safetensors).
    @param weights_root The 32-byte Merkle root of the weights'
           chunks (empty: not for sale).
    @param card_digest The 32-byte CID digest of the model card.
    @return uint256 The new version number.
    """
    self._check_owner(model_id)
    assert checkpoint_digest != empty(bytes32) and card_digest != empty(bytes32), "model_market: empty digest"
    dataset_id: uint256 = self._models[model_id].dataset_id
    version: uint256 = self._publish(model_id, dataset_id, checkpoint_digest, weights_root, card_digest)
    cap: uint256 = self._terms[dataset_id].base_price
    if self._models[model_id].price > cap:
        self._models[model_id].price = cap
        log PriceSet(model_id=model_id, price=cap)
    return version


@external
def set_price(model_id: uint256, price: uint256):
    """
    @dev Sets a model's price per prediction, at most the price
         cap of its current version's score (0 if unbenchmarked).
    @notice Only the model's owner. Receipts are signed for
            amounts, not prices: the serving node charges the price
            it announces, and users see it here.
    @param model_id The 32-byte model id.
    @param price The wei per prediction.
    """
    self._check_owner(model_id)
    current: uint256 = self._models[model_id].current_version
    assert price <= self._cap(self._models[model_id].dataset_id, self._versions[model_id][current].score_bps), "model_market: price above cap"
    self._models[model_id].price = price
    log PriceSet(model_id=model_id, price=price)


@external
def set_node(model_id: uint256, node: address):
    """
    @dev Sets the node that serves a model and settles its
         receipts.
    @notice Only the model's owner. Receipts not yet settled are
            settled by the new node.
    @param model_id The 32-byte model id.
    @param node The 20-byte node address.
    """
    self._check_owner(model_id)
    assert node != empty(address), "model_market: zero node"
    self._models[model_id].node = node
    self._balances[node] |= _LIVE
    log NodeSet(model_id=model_id, node=node)


@external
@view
def terms(dataset_id: uint256) -> Terms:
    """
    @dev Returns a dataset's model terms (`set` false: none yet).
    @param dataset_id The 32-byte dataset id.
    @return Terms The terms.
    """
    return self._terms[dataset_id]


@external
@view
def price_cap(dataset_id: uint256, score_bps: uint256) -> uint256:
    """
    @dev Returns the highest price per prediction a model of the
         dataset with benchmark score `score_bps` may charge.
    @param dataset_id The 32-byte dataset id.
    @param score_bps The score in basis points (at most `BPS`).
    @return uint256 The price cap in wei.
    """
    assert score_bps <= BPS, "model_market: invalid score"
    return self._cap(dataset_id, score_bps)


@external
@view
def model(model_id: uint256) -> Model:
    """
    @dev Returns a model.
    @param model_id The 32-byte model id.
    @return Model The model.
    """
    self._check_model(model_id)
    return self._models[model_id]


@external
@view
def version(model_id: uint256, version: uint256) -> Version:
    """
    @dev Returns a version of a model and its benchmark.
    @param model_id The 32-byte model id.
    @param version The 32-byte version number (from 1).
    @return Version The version.
    """
    self._check_version(model_id, version)
    return self._versions[model_id][version]


@external
@view
def owner_of(model_id: uint256) -> address:
    """
    @dev Returns the owner of a model (reverts if unknown).
    @param model_id The 32-byte model id.
    @return address The 20-byte owner address.
    """
    self._check_model(model_id)
    return self._models[model_id].owner


@external
@view
def weights_root(model_id: uint256, version: uint256) -> bytes32:
    """
    @dev Returns the Merkle root of a version's weight chunks
         (reverts if the version is unknown).
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @return bytes32 The 32-byte root (empty: not for sale).
    """
    self._check_version(model_id, version)
    return self._versions[model_id][version].weights_root


@external
@view
def is_benchmarked(model_id: uint256, version: uint256) -> bool:
    """
    @dev Returns whether a version's benchmark is finalized
         (`False` for an unknown version).
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @return bool `True` if benchmarked.
    """
    return self._versions[model_id][version].benchmarked


@external
@view
def score_of(model_id: uint256, version: uint256) -> uint256:
    """
    @dev Returns a version's benchmark score in basis points (0
         until benchmarked, or for an unknown version).
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @return uint256 The score.
    """
    return self._versions[model_id][version].score_bps


@external
@view
def dataset_models(dataset_id: uint256, start: uint256, count: uint256) -> DynArray[uint256, MAX_PAGE]:
    """
    @dev Returns up to `count` ids of the models registered on a
         dataset, in registration order, from index `start`.
    @param dataset_id The 32-byte dataset id.
    @param start The 32-byte first index.
    @param count The 32-byte number of ids wanted (at most
           `MAX_PAGE` are returned).
    @return DynArray The model ids.
    """
    length: uint256 = self.dataset_model_count[dataset_id]
    page: DynArray[uint256, MAX_PAGE] = []
    for offset: uint256 in range(MAX_PAGE):
        if offset >= count or start + offset >= length:
            break
        page.append(self._dataset_models[dataset_id][start + offset])
    return page


@external
@pure
def benchmark_commitment(
    model_id: uint256, version: uint256, evaluator: address, score_bps: uint256, report_digest: bytes32, salt: bytes32
) -> bytes32:
    """
    @dev Returns the commitment `commit_benchmark` expects:
         `keccak256(abi_encode(model_id, version, evaluator,
         score_bps, report_digest, salt))`.
    @notice Compute it off-chain or with a call: the salt stays
            secret until the reveal. Binding the evaluator keeps a
            commitment from being replayed by another one.
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @param evaluator The 20-byte evaluator address.
    @param score_bps The score in basis points.
    @param report_digest The 32-byte CID digest of the report.
    @param salt The 32-byte secret salt.
    @return bytes32 The 32-byte commitment.
    """
    return keccak256(abi_encode(model_id, version, evaluator, score_bps, report_digest, salt))


@external
def commit_benchmark(model_id: uint256, version: uint256, commitment: bytes32):
    """
    @dev Commits the caller, an evaluator of the model's dataset,
         to a benchmark score of a version.
    @notice During the commit phase, once per evaluator, never by
            the model's owner, at most `MAX_EVALUATORS` per version.
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @param commitment The 32-byte commitment (see
           `benchmark_commitment`).
    """
    self._check_version(model_id, version)
    assert block.timestamp < self._versions[model_id][version].commit_deadline, "model_market: commit phase over"
    assert staticcall IDataMarket(market).is_evaluator(self._models[model_id].dataset_id, msg.sender), "model_market: not an evaluator"
    assert msg.sender != self._models[model_id].owner, "model_market: own model"
    assert commitment != empty(bytes32), "model_market: empty commitment"
    bench: uint256 = self._bench_id(model_id, version)
    assert sealed_scores._commitment(bench, msg.sender) == empty(bytes32), "model_market: already committed"
    commits: uint256 = self._versions[model_id][version].commits
    assert commits < MAX_EVALUATORS, "model_market: too many evaluators"
    sealed_scores._commit(bench, msg.sender, commitment)
    self._versions[model_id][version].commits = commits + 1
    log BenchmarkCommitted(model_id=model_id, version=version, evaluator=msg.sender)


@external
def reveal_benchmark(model_id: uint256, version: uint256, score_bps: uint256, report_digest: bytes32, salt: bytes32):
    """
    @dev Reveals the caller's committed benchmark score, in basis
         points of accuracy, and its report's digest.
    @notice During the reveal phase, once, matching the
            commitment.
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @param score_bps The score in basis points (at most `BPS`).
    @param report_digest The 32-byte CID digest of the report.
    @param salt The 32-byte salt of the commitment.
    """
    self._check_version(model_id, version)
    assert block.timestamp >= self._versions[model_id][version].commit_deadline, "model_market: commit phase open"
    assert block.timestamp < self._versions[model_id][version].reveal_deadline, "model_market: reveal phase over"
    bench: uint256 = self._bench_id(model_id, version)
    commitment: bytes32 = sealed_scores._commitment(bench, msg.sender)
    assert commitment != empty(bytes32), "model_market: no commitment"
    assert sealed_scores._scorecard(bench, msg.sender) == 0, "model_market: already revealed"
    assert commitment == keccak256(
        abi_encode(model_id, version, msg.sender, score_bps, report_digest, salt)
    ), "model_market: commitment mismatch"
    assert score_bps <= BPS, "model_market: invalid score"
    reveals: uint256 = self._versions[model_id][version].reveals
    sealed_scores._reveal(bench, msg.sender, reveals, convert(score_bps, int256))
    self._versions[model_id][version].reveals = reveals + 1
    log BenchmarkRevealed(
        model_id=model_id, version=version, evaluator=msg.sender, score_bps=score_bps, report_digest=report_digest
    )


@external
def request_benchmark(model_id: uint256, version: uint256):
    """
    @dev Reopens the commit and reveal phases of a version whose
         reveal phase ended without any reveal, from now on with
         the dataset's current periods.
    @notice Only the model's owner. Commitments already made stay
            (their evaluators may reveal in the new reveal phase).
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    """
    self._check_owner(model_id)
    self._check_version(model_id, version)
    assert not self._versions[model_id][version].benchmarked, "model_market: already finalized"
    assert block.timestamp >= self._versions[model_id][version].reveal_deadline, "model_market: reveal phase open"
    assert self._versions[model_id][version].reveals == 0, "model_market: scores revealed"
    terms: Terms = self._terms[self._models[model_id].dataset_id]
    commit_deadline: uint256 = block.timestamp + terms.commit_period
    reveal_deadline: uint256 = commit_deadline + terms.reveal_period
    self._versions[model_id][version].commit_deadline = commit_deadline
    self._versions[model_id][version].reveal_deadline = reveal_deadline
    log BenchmarkRequested(
        model_id=model_id, version=version, commit_deadline=commit_deadline, reveal_deadline=reveal_deadline
    )


@external
def finalize_benchmark(model_id: uint256, version: uint256) -> uint256:
    """
    @dev Finalizes a version's benchmark after its reveal phase:
         the score is the median of the revealed scores. The
         version becomes its dataset's best checkpoint if there is
         none yet or if its score beats the best by more than the
         dataset's margin.
    @notice Anyone may call it, once, with at least one reveal. If
            the version is served and the model's price is above
            the cap of its score (terms changed since), the price
            falls to the cap (`PriceSet`).
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @return uint256 The score in basis points.
    """
    self._check_version(model_id, version)
    assert not self._versions[model_id][version].benchmarked, "model_market: already finalized"
    assert block.timestamp >= self._versions[model_id][version].reveal_deadline, "model_market: reveal phase open"
    reveals: uint256 = self._versions[model_id][version].reveals
    assert reveals != 0, "model_market: no reveals"
    # Revealed scores are 0..BPS: the median is non-negative.
    score: uint256 = convert(sealed_scores._median(self._bench_id(model_id, version), reveals), uint256)
    self._versions[model_id][version].benchmarked = True
    self._versions[model_id][version].score_bps = score
    log BenchmarkFinalized(model_id=model_id, version=version, score_bps=score)

    dataset_id: uint256 = self._models[model_id].dataset_id
    if self._models[model_id].current_version == version:
        cap: uint256 = self._cap(dataset_id, score)
        if self._models[model_id].price > cap:
            self._models[model_id].price = cap
            log PriceSet(model_id=model_id, price=cap)

    best: uint256 = self._best[dataset_id]
    if best == 0 or score > (best & _MASK_32) + self._terms[dataset_id].margin_bps:
        self._best[dataset_id] = (model_id << _BEST_MODEL_SHIFT) | (version << _BEST_VERSION_SHIFT) | score
        log BestCheckpoint(dataset_id=dataset_id, model_id=model_id, version=version, score_bps=score)
    return score


@external
@view
def best(dataset_id: uint256) -> (uint256, uint256, uint256):
    """
    @dev Returns a dataset's best checkpoint (zeros when none).
    @param dataset_id The 32-byte dataset id.
    @return uint256 The model id.
    @return uint256 The version.
    @return uint256 The score in basis points.
    """
    best: uint256 = self._best[dataset_id]
    return best >> _BEST_MODEL_SHIFT, (best >> _BEST_VERSION_SHIFT) & _MASK_96, best & _MASK_32


@external
@view
def benchmark_score(model_id: uint256, version: uint256, evaluator: address) -> (bool, bool, uint256):
    """
    @dev Returns one evaluator's part in a version's benchmark.
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @param evaluator The 20-byte evaluator address.
    @return bool Whether it committed.
    @return bool Whether it revealed.
    @return uint256 Its revealed score (0 if none).
    """
    bench: uint256 = self._bench_id(model_id, version)
    card: uint256 = sealed_scores._scorecard(bench, evaluator)
    score: uint256 = 0
    if card != 0:
        score = convert(sealed_scores._card_score(card), uint256)
    return sealed_scores._commitment(bench, evaluator) != empty(bytes32), card != 0, score


@external
@payable
@nonreentrant
def deposit(model_id: uint256):
    """
    @dev Deposits `msg.value` into the caller's prepaid escrow for
         a model; cancels a pending exit.
    @param model_id The 32-byte model id.
    """
    self._check_model(model_id)
    assert msg.value != 0, "model_market: zero deposit"
    amounts: uint256 = self._escrow_amounts[model_id][msg.sender]
    deposited: uint256 = (amounts & _MASK_128) + msg.value
    # Less ether than 2**128 wei exists.
    assert deposited <= _MASK_128, "model_market: deposit too large"
    self._escrow_amounts[model_id][msg.sender] = (amounts & ~_MASK_128) | deposited
    # Keep the nonce, clear the exit, set the live bit.
    self._escrow_clocks[model_id][msg.sender] = (self._escrow_clocks[model_id][msg.sender] & _MASK_128) | _LIVE
    log Deposited(model_id=model_id, user=msg.sender, amount=msg.value, deposited=deposited)


@external
@view
def escrow(model_id: uint256, user: address) -> Escrow:
    """
    @dev Returns a user's escrow for a model.
    @param model_id The 32-byte model id.
    @param user The 20-byte user address.
    @return Escrow The escrow.
    """
    amounts: uint256 = self._escrow_amounts[model_id][user]
    clock: uint256 = self._escrow_clocks[model_id][user]
    return Escrow(
        deposited=amounts & _MASK_128,
        settled=amounts >> _HIGH_SHIFT,
        nonce=clock & _MASK_128,
        exit_at=(clock >> _HIGH_SHIFT) & _MASK_64,
    )


@external
@view
def domain_separator() -> bytes32:
    """
    @dev Returns the EIP-712 domain separator of the receipts.
    @return bytes32 The 32-byte domain separator.
    """
    return eip712_domain_separator._domain_separator_v4()


@external
@view
def receipt_digest(model_id: uint256, user: address, total: uint256, nonce: uint256) -> bytes32:
    """
    @dev Returns the EIP-712 digest of a receipt, the hash the
         user signs.
    @param model_id The 32-byte model id.
    @param user The 20-byte user address.
    @param total The cumulative wei owed so far.
    @param nonce The receipt's nonce.
    @return bytes32 The 32-byte digest.
    """
    return self._receipt_digest(model_id, user, total, nonce)


@external
@nonreentrant
def settle(model_id: uint256, user: address, total: uint256, nonce: uint256, signature: Bytes[65]):
    """
    @dev Settles a user's latest signed receipt: pays the increase
         of its cumulative total over the last settled one, split
         among the dataset's shareholders (a dividend through the
         share token's `pay`), the node and the owner (credited).
    @notice Only the model's node, before the user's exit time.
            The nonce and total must exceed the last settled ones,
            the total must not exceed the deposit, and the 65-byte
            signature must be the user's (low `s`). Effects before
            the `pay` call.
    @param model_id The 32-byte model id.
    @param user The 20-byte user address.
    @param total The cumulative wei owed (signed).
    @param nonce The receipt's nonce (signed).
    @param signature The 65-byte `r || s || v` signature.
    """
    node: address = self._models[model_id].node
    assert msg.sender == node, "model_market: not the node"
    amounts: uint256 = self._escrow_amounts[model_id][user]
    clock: uint256 = self._escrow_clocks[model_id][user]
    settled: uint256 = amounts >> _HIGH_SHIFT
    assert nonce > clock & _MASK_128, "model_market: stale nonce"
    assert nonce <= _MASK_128, "model_market: invalid nonce"
    assert total > settled, "model_market: nothing to settle"
    assert total <= amounts & _MASK_128, "model_market: receipt beyond deposit"
    exit_at: uint256 = (clock >> _HIGH_SHIFT) & _MASK_64
    assert exit_at == 0 or block.timestamp < exit_at, "model_market: escrow exited"
    assert len(signature) == 65, "model_market: invalid signature"
    assert extract32(signature, 32, output_type=uint256) <= _MALLEABILITY_THRESHOLD, "model_market: invalid signature"
    signer: address = ecdsa._recover_sig(self._receipt_digest(model_id, user, total, nonce), signature)
    assert signer == user, "model_market: wrong signer"

    amount: uint256 = total - settled
    dataset_id: uint256 = self._models[model_id].dataset_id
    data_amount: uint256 = amount * self._models[model_id].data_bps // BPS
    node_amount: uint256 = amount * self._models[model_id].node_bps // BPS
    owner_amount: uint256 = amount - data_amount - node_amount
    # `total <= deposited < 2**128` and `nonce < 2**128`: both fit.
    self._escrow_amounts[model_id][user] = (amounts & _MASK_128) | (total << _HIGH_SHIFT)
    self._escrow_clocks[model_id][user] = (clock & ~_MASK_128) | nonce
    # The live bit is set in each word below, so a sum that could
    # ever carry out of its top field overflows and reverts.
    self._balances[node] += node_amount
    owner: address = self._models[model_id].owner
    self._balances[owner] += owner_amount
    self._model_revenues[model_id] += amount
    self._revenues[dataset_id] += data_amount << _HIGH_SHIFT
    log Settled(
        model_id=model_id,
        user=user,
        node=node,
        amount=amount,
        total=total,
        nonce=nonce,
        owner_amount=owner_amount,
        data_amount=data_amount,
        node_amount=node_amount,
    )
    if data_amount != 0:
        extcall IShareToken(self._share_tokens[dataset_id]).pay(value=data_amount)


@external
def start_exit(model_id: uint256):
    """
    @dev Announces the caller's exit from its escrow for a model:
         the unspent deposit may be withdrawn from `EXIT_DELAY`
         on, and the node may settle until then.
    @param model_id The 32-byte model id.
    """
    amounts: uint256 = self._escrow_amounts[model_id][msg.sender]
    clock: uint256 = self._escrow_clocks[model_id][msg.sender]
    assert amounts & _MASK_128 > amounts >> _HIGH_SHIFT, "model_market: nothing deposited"
    assert (clock >> _HIGH_SHIFT) & _MASK_64 == 0, "model_market: exit pending"
    exit_at: uint256 = block.timestamp + EXIT_DELAY
    self._escrow_clocks[model_id][msg.sender] = clock | (exit_at << _HIGH_SHIFT)
    log ExitStarted(model_id=model_id, user=msg.sender, exit_at=exit_at)


@external
@nonreentrant
def withdraw_deposit(model_id: uint256) -> uint256:
    """
    @dev Pays the caller back what its escrow for a model holds
         beyond the last settled receipt, once its exit time has
         come.
    @notice Afterwards `deposited == settled`: no receipt can claim
            anything until the next deposit. Pull payment: effects
            before the ETH is sent.
    @param model_id The 32-byte model id.
    @return uint256 The amount sent, in wei.
    """
    amounts: uint256 = self._escrow_amounts[model_id][msg.sender]
    clock: uint256 = self._escrow_clocks[model_id][msg.sender]
    exit_at: uint256 = (clock >> _HIGH_SHIFT) & _MASK_64
    assert exit_at != 0, "model_market: no exit"
    assert block.timestamp >= exit_at, "model_market: exit delay"
    settled: uint256 = amounts >> _HIGH_SHIFT
    amount: uint256 = (amounts & _MASK_128) - settled
    assert amount != 0, "model_market: nothing to withdraw"
    self._escrow_amounts[model_id][msg.sender] = (settled << _HIGH_SHIFT) | settled
    self._escrow_clocks[model_id][msg.sender] = (clock & _MASK_128) | _LIVE
    log DepositWithdrawn(model_id=model_id, user=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)
    return amount


@external
@nonreentrant
def withdraw() -> uint256:
    """
    @dev Pays the caller its credited earnings (as a model owner
         or a serving node).
    @notice Pull payment: effects before the ETH is sent.
    @return uint256 The amount sent, in wei.
    """
    word: uint256 = self._balances[msg.sender]
    amount: uint256 = word & ~_LIVE
    assert amount != 0, "model_market: nothing to withdraw"
    # Keep the live bit: the next credit rewrites the slot.
    self._balances[msg.sender] = word & _LIVE
    log Withdrawn(account=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)
    return amount


@external
@view
def balance_of(account: address) -> uint256:
    """
    @dev Returns the earnings credited to `account` (as a model
         owner or a serving node) and not yet withdrawn.
    @param account The 20-byte account address.
    @return uint256 The amount in wei.
    """
    return self._balances[account] & ~_LIVE


@external
@view
def training_revenue(dataset_id: uint256) -> uint256:
    """
    @dev Returns the training fees paid to a dataset's
         shareholders.
    @param dataset_id The 32-byte dataset id.
    @return uint256 The amount in wei.
    """
    return self._revenues[dataset_id] & _MASK_128


@external
@view
def prediction_revenue(dataset_id: uint256) -> uint256:
    """
    @dev Returns the prediction revenue paid to a dataset's
         shareholders (the data part of every settlement).
    @param dataset_id The 32-byte dataset id.
    @return uint256 The amount in wei.
    """
    return (self._revenues[dataset_id] >> _HIGH_SHIFT) & _MASK_127


@external
@view
def model_revenue(model_id: uint256) -> uint256:
    """
    @dev Returns the total settled for a model's predictions.
    @param model_id The 32-byte model id.
    @return uint256 The amount in wei.
    """
    return self._model_revenues[model_id] & ~_LIVE


@internal
def _publish(
    model_id: uint256, dataset_id: uint256, checkpoint_digest: bytes32, weights_root: bytes32, card_digest: bytes32
) -> uint256:
    """
    @dev Appends a version to a model, makes it the current one
         and opens its benchmark phases with the dataset's terms.
    @param model_id The 32-byte model id.
    @param dataset_id The 32-byte dataset id of the model.
    @param checkpoint_digest The 32-byte checkpoint CID digest.
    @param weights_root The 32-byte Merkle root of the weights.
    @param card_digest The 32-byte model card CID digest.
    @return uint256 The new version number.
    """
    version: uint256 = self._models[model_id].versions + 1
    assert version <= _MASK_96, "model_market: too many versions"
    terms: Terms = self._terms[dataset_id]
    commit_deadline: uint256 = block.timestamp + terms.commit_period
    reveal_deadline: uint256 = commit_deadline + terms.reveal_period
    self._models[model_id].versions = version
    self._models[model_id].current_version = version
    self._versions[model_id][version] = Version(
        checkpoint_digest=checkpoint_digest,
        weights_root=weights_root,
        card_digest=card_digest,
        published_at=block.timestamp,
        commit_deadline=commit_deadline,
        reveal_deadline=reveal_deadline,
        commits=0,
        reveals=0,
        benchmarked=False,
        score_bps=0,
    )
    log VersionPublished(
        model_id=model_id,
        version=version,
        checkpoint_digest=checkpoint_digest,
        weights_root=weights_root,
        card_digest=card_digest,
        commit_deadline=commit_deadline,
        reveal_deadline=reveal_deadline,
    )
    return version


@internal
@view
def _cap(dataset_id: uint256, score_bps: uint256) -> uint256:
    """
    @dev Returns the price cap of a score under the dataset's
         terms (no overflow: prices and slope are below 2**128).
    @param dataset_id The 32-byte dataset id.
    @param score_bps The score in basis points.
    @return uint256 The cap in wei.
    """
    terms: Terms = self._terms[dataset_id]
    return terms.base_price + terms.price_slope * score_bps // BPS


@internal
@view
def _check_model(model_id: uint256):
    """
    @dev Reverts for an unknown model.
    @param model_id The 32-byte model id.
    """
    assert model_id != 0 and model_id <= self.model_count, "model_market: unknown model"


@internal
@view
def _check_version(model_id: uint256, version: uint256):
    """
    @dev Reverts for an unknown model or version.
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    """
    self._check_model(model_id)
    assert version != 0 and version <= self._models[model_id].versions, "model_market: unknown version"


@internal
@view
def _check_owner(model_id: uint256):
    """
    @dev Reverts unless the caller owns the (known) model.
    @param model_id The 32-byte model id.
    """
    self._check_model(model_id)
    assert msg.sender == self._models[model_id].owner, "model_market: not the owner"


@internal
@pure
def _bench_id(model_id: uint256, version: uint256) -> uint256:
    """
    @dev Returns the key of a version's benchmark in
         `sealed_scores` (versions are below 2**96).
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @return uint256 The key.
    """
    return (model_id << _BEST_MODEL_SHIFT) | version


@internal
@view
def _receipt_digest(model_id: uint256, user: address, total: uint256, nonce: uint256) -> bytes32:
    """
    @dev Returns the EIP-712 digest of a receipt.
    @param model_id The 32-byte model id.
    @param user The 20-byte user address.
    @param total The cumulative wei owed.
    @param nonce The receipt's nonce.
    @return bytes32 The 32-byte digest.
    """
    return eip712_domain_separator._hash_typed_data_v4(
        keccak256(abi_encode(RECEIPT_TYPEHASH, model_id, user, total, nonce))
    )
