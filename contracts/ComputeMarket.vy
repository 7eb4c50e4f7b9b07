# pragma version ~=0.4.3
# pragma evm-version cancun
# pragma nonreentrancy off
# pragma optimize gas
"""
@title DataBright Compute Market
@custom:contract-name ComputeMarket
@license Apache-2.0
@notice The on-chain side of the computation market: a registry of
        staked worker devices, jobs whose payment is escrowed under
        payer-set caps, payment per verified work unit, and slashing of
        workers that a quorum contradicts, with the evidence on-chain;
        and federations: federated training paid by contribution
        from an escrow that its payer cannot take back once training
        started. The work itself, its replication and its
        verification happen off-chain under an attested coordinator;
        this contract only holds the money and the record.

        Governance. The deployer is the admin (snekmate `ownable` with
        a two-step transfer; renouncing is not exported, so revocation
        always stays possible). The admin allows coordinators with
        `allow_coordinator(coordinator, measurement)`: its tooling has
        verified the coordinator's attestation off-chain, and the
        contract keeps the attested measurement so that anyone can audit
        which code was allowed. `revoke_coordinator` withdraws the
        permission: a revoked coordinator can no longer take jobs, pay
        units or slash (it may still close its jobs, which only refunds
        payers).

        Devices. A worker registers one device per account with its
        numeric class (replicas of a unit go to devices of one class),
        capabilities (a bit set the coordinator interprets) and minimum
        fee per unit, staking at least `MIN_STAKE`. It may add stake at
        any time. Leaving takes two steps: `request_unstake`, then
        `withdraw_stake` from `UNSTAKE_DELAY` on, which pays back the
        whole stake and deletes the device: a cheater cannot take its
        stake out before the coordinator, which verifies every unit by
        redundancy as it arrives, has had that long to slash it. Adding
        stake cancels a pending unstake.

        Jobs. A payer creates a job for an allowed coordinator with a
        maximum amount (sent with the call and escrowed), an expiry in
        the future and the digest of the job's spec. The coordinator
        pays each verified unit once (`pay_unit`): the same fee to each
        worker that produced the agreed result (at least each worker's
        minimum fee), credited as a pull payment, never beyond the
        escrow's remaining amount and never at or after the expiry. So
        the coordinator checks `remaining` before each dispatch (an
        empty escrow stops the work, unlike Akash's leases that run
        past it). The payer or the coordinator may close a job at any
        time (`close_job`); after the expiry the payer may also
        `reclaim` it, whatever became of the coordinator (Ocean's
        escrows could get stuck "configuring"). Either way the rest of
        the escrow is credited back to the payer. A payer who closes
        early costs the workers at most the units in flight, which are
        not verified and so not owed.

        Units. A unit id is the coordinator's digest of the unit (it is
        scoped to its job here, so two jobs cannot collide). A unit is
        paid at most once, in one call for all of its agreeing
        workers; a worker slashed for a unit can never be paid for it.
        Only staked devices are paid (a fully slashed device is not,
        until it stakes again).

        Slashing. When a quorum of replicas contradicts a worker (after
        the coordinator's bisection to the disputed step, as in Gensyn
        Verde's refereed delegation), the coordinator calls `slash`
        with the unit, the hash of its input, the agreed (honest) and
        the worker's (bad) output hashes and the CID of the evidence
        bundle (both signed results and the recomputation), which
        anyone can fetch and check against these hashes. The worker
        loses its whole stake ("cheaters lose their stake"), once per
        (job, unit, worker). The slashed ether is burned: it stays in
        this contract for good (`burned`) and no function can move it.
        Burning rather than paying the payer is deliberate: nobody
        profits from a slash, so no party has a reason to provoke or
        fake one (a payer who is also, or colludes with, the
        coordinator could otherwise turn slashing into income), and a
        cheater cannot get its stake back by cheating on a job that it
        pays for itself through another account. The payer's remedy is
        that it pays only verified units: the cheater's unit is never
        paid. The evidence stays readable with `evidence(job_id,
        worker, unit_id)` and is logged in full by `Slashed`.

        Federations (federated training, issue 12 section 7). Data
        stays with its owners (the clients), who train locally; an
        allowed coordinator aggregates their updates and scores each
        client's contribution on its own validation set. A payer
        creates a federation for an allowed coordinator, escrowing
        its whole amount (`create_federation`), naming the clients
        and/or letting clients join (`join_federation`) until the
        coordinator starts training (`start_federation`). Until then
        the payer (or the coordinator, declining) may cancel it
        (`cancel_federation`) and get everything back; from the start
        on the payer cannot: the clients share their data's work on
        the promise of this escrow, so it may only leave by the
        coordinator's payouts or by the deadline. The coordinator
        posts the final payouts once, before the deadline
        (`settle_federation`): each listed client at most once,
        clients of the federation only, summing to at most the
        escrow, with the CID digest of the per-round contribution
        scores they follow from, which anyone can fetch and check.
        The payouts are credited to the clients (pull payments,
        `withdraw`) and the rest to the payer. A coordinator that
        never settles (vanished, revoked) costs the payer only time:
        from the deadline on the payer reclaims the whole escrow
        (`reclaim_federation`). A revoked coordinator can neither
        start nor settle, so that its federations end by the deadline.

        Money. Every wei is in exactly one place: a device's stake, a
        job's remaining escrow, the escrow of a federation that is
        open or running, an account's credited balance, or burned.
        Earnings and refunds are pull payments (`withdraw`), so a
        reverting or reentrant receiver cannot block a payment, a
        close, a settlement or a slash. Every state-changing function that touches
        money is `@nonreentrant` (one transient lock for all).
@custom:security The only ether transfers are in `withdraw` and
                 `withdraw_stake`, both after their effects
                 (checks-effects-interactions) under the shared
                 reentrancy lock; there are no other external calls.
"""


# @dev We import and initialise snekmate's `ownable` and its
# two-step transfer: the admin allows and revokes coordinators.
from snekmate.auth import ownable
initializes: ownable


from snekmate.auth import ownable_2step
initializes: ownable_2step[ownable := ownable]


# @dev The ownership surface; `renounce_ownership` is left out on
# purpose (without an admin no coordinator could be revoked).
exports: (
    ownable.owner,
    ownable_2step.pending_owner,
    ownable_2step.transfer_ownership,
    ownable_2step.accept_ownership,
)


# @dev The smallest stake of a device, in wei.
MIN_STAKE: public(constant(uint256)) = 10**16


# @dev Seconds between `request_unstake` and the earliest
# `withdraw_stake` (the coordinator's time to slash).
UNSTAKE_DELAY: public(constant(uint256)) = 86_400


# @dev The most workers paid for one unit.
MAX_WORKERS: public(constant(uint256)) = 8


# @dev The most clients of one federation.
MAX_CLIENTS: public(constant(uint256)) = 128


# @dev Federation statuses (0: none).
FEDERATION_OPEN: constant(uint8) = 1
FEDERATION_RUNNING: constant(uint8) = 2
FEDERATION_SETTLED: constant(uint8) = 3
FEDERATION_CANCELLED: constant(uint8) = 4
FEDERATION_RECLAIMED: constant(uint8) = 5


# @dev Bits of a federation client's word: set for every client
# (the word is then non-zero, so posting rewrites a slot instead of
# paying for a fresh one), and once its payout is posted (the low
# bits then hold the payout).
_CLIENT: constant(uint256) = 1 << 255
_POSTED: constant(uint256) = 1 << 254


# @dev A set bit that keeps a balance word non-zero from a
# device's registration on, so that its first payment rewrites a
# slot instead of paying for a fresh one (20,000 gas).
_LIVE: constant(uint256) = 1 << 255


# @dev A worker's device.
struct Device:
    numeric_class: bytes32
    capabilities: uint256
    min_fee: uint256
    stake: uint256
    unstake_at: uint256
    registered_at: uint256


# @dev A job and its escrow: `max_amount - remaining` paid so far
# (`remaining` is kept at close: it is what the payer got back). The
# escrow is kept as what remains, not what was spent, so that the
# word is non-zero from creation and the first unit costs what
# every later one does.
struct Job:
    payer: address
    coordinator: address
    max_amount: uint256
    remaining: uint256
    expiry: uint256
    spec_digest: bytes32
    closed: bool


# @dev The evidence behind a slash (`slashed_at` 0: none).
struct Evidence:
    input_hash: bytes32
    honest_output: bytes32
    bad_output: bytes32
    evidence_cid: bytes32
    amount: uint256
    slashed_at: uint256


# @dev A federation: its escrow (`amount`, all of it held until it
# is settled, cancelled or reclaimed), who pays and coordinates, the
# deadline for the payouts, and once settled what the clients got
# (`paid`) and the CID digest of the scores behind it.
struct Federation:
    payer: address
    coordinator: address
    amount: uint256
    paid: uint256
    deadline: uint256
    spec_digest: bytes32
    scores_cid: bytes32
    clients: uint256
    open_joining: bool
    status: uint8
    started_at: uint256


# @dev A client's place in a federation, as `participant` reads it.
struct Participant:
    joined: bool
    posted: bool
    payout: uint256


# @dev Coordinator => its attested measurement (empty: not allowed).
_measurements: HashMap[address, bytes32]


# @dev Owner => device (`registered_at` 0: none).
_devices: HashMap[address, Device]


# @dev The number of jobs; ids run from 1 to it.
job_count: public(uint256)


# @dev Job id => job.
_jobs: HashMap[uint256, Job]


# @dev Job id => unit id => paid.
_paid_units: HashMap[uint256, HashMap[bytes32, bool]]


# @dev Job id => worker => unit id => evidence of its slash.
_evidence: HashMap[uint256, HashMap[address, HashMap[bytes32, Evidence]]]


# @dev The number of federations; ids run from 1 to it.
federation_count: public(uint256)


# @dev Federation id => federation.
_federations: HashMap[uint256, Federation]


# @dev Federation id => client => `_CLIENT | _POSTED | payout`
# bits (0: not a client).
_federation_clients: HashMap[uint256, HashMap[address, uint256]]


# @dev Account => credited earnings and refunds (low 255 bits;
# live bit set for registered devices), withdrawn with `withdraw`.
_balances: HashMap[address, uint256]


# @dev The total stake held by devices, in wei.
total_staked: public(uint256)


# @dev The total slashed and burned, in wei.
burned: public(uint256)


# @dev Emitted when the admin allows a coordinator.
event CoordinatorAllowed:
    coordinator: indexed(address)
    measurement: bytes32


# @dev Emitted when the admin revokes a coordinator.
event CoordinatorRevoked:
    coordinator: indexed(address)


# @dev Emitted when a device is registered.
event DeviceRegistered:
    owner: indexed(address)
    numeric_class: bytes32
    capabilities: uint256
    min_fee: uint256
    stake: uint256


# @dev Emitted when a device's stake grows.
event StakeAdded:
    owner: indexed(address)
    amount: uint256
    stake: uint256


# @dev Emitted when a device announces that it leaves.
event UnstakeRequested:
    owner: indexed(address)
    unstake_at: uint256


# @dev Emitted when a device's stake is paid back and the device
# deleted.
event StakeWithdrawn:
    owner: indexed(address)
    amount: uint256


# @dev Emitted when a job is created and its escrow funded.
event JobCreated:
    job_id: indexed(uint256)
    payer: indexed(address)
    coordinator: indexed(address)
    max_amount: uint256
    expiry: uint256
    spec_digest: bytes32


# @dev Emitted when a verified unit is paid.
event UnitPaid:
    job_id: indexed(uint256)
    unit_id: indexed(bytes32)
    workers: DynArray[address, MAX_WORKERS]
    fee_each: uint256
    remaining: uint256


# @dev Emitted when a worker is slashed, with all its evidence.
event Slashed:
    worker: indexed(address)
    job_id: indexed(uint256)
    unit_id: indexed(bytes32)
    input_hash: bytes32
    honest_output: bytes32
    bad_output: bytes32
    evidence_cid: bytes32
    amount: uint256


# @dev Emitted when a job is closed (or reclaimed) and the rest of
# its escrow credited to the payer.
event JobClosed:
    job_id: indexed(uint256)
    closed_by: indexed(address)
    refund: uint256


# @dev Emitted when a federation is created and its escrow funded.
event FederationCreated:
    federation_id: indexed(uint256)
    payer: indexed(address)
    coordinator: indexed(address)
    amount: uint256
    deadline: uint256
    spec_digest: bytes32
    open_joining: bool


# @dev Emitted for each client of a federation, named at creation
# or joined later.
event FederationJoined:
    federation_id: indexed(uint256)
    client: indexed(address)


# @dev Emitted when the coordinator starts training: from now on
# the payer cannot take the escrow back before the deadline.
event FederationStarted:
    federation_id: indexed(uint256)
    clients: uint256


# @dev Emitted for each payout the coordinator posts.
event FederationPayout:
    federation_id: indexed(uint256)
    client: indexed(address)
    amount: uint256


# @dev Emitted when the coordinator settles a federation.
event FederationSettled:
    federation_id: indexed(uint256)
    scores_cid: bytes32
    paid: uint256
    refund: uint256


# @dev Emitted when a federation is cancelled before its start or
# reclaimed after its deadline, its escrow credited to the payer.
event FederationClosed:
    federation_id: indexed(uint256)
    closed_by: indexed(address)
    refund: uint256


# @dev Emitted when an account withdraws its credited balance.
event Withdrawn:
    account: indexed(address)
    amount: uint256


@deploy
@payable
def __init__():
    """
    @dev Makes the deployer the admin.
    """
    ownable.__init__()
    ownable_2step.__init__()


@external
def allow_coordinator(coordinator: address, measurement: bytes32):
    """
    @dev Allows a coordinator whose attestation the admin's tooling
         verified, recording its measurement (or replacing it).
    @notice Only the admin.
    @param coordinator The 20-byte coordinator address.
    @param measurement The 32-byte attested measurement.
    """
    ownable._check_owner()
    assert coordinator != empty(address), "compute_market: zero coordinator"
    assert measurement != empty(bytes32), "compute_market: empty measurement"
    self._measurements[coordinator] = measurement
    log CoordinatorAllowed(coordinator=coordinator, measurement=measurement)


@external
def revoke_coordinator(coordinator: address):
    """
    @dev Revokes a coordinator: it can no longer take jobs, pay
         units or slash.
    @notice Only the admin.
    @param coordinator The 20-byte coordinator address.
    """
    ownable._check_owner()
    assert self._measurements[coordinator] != empty(bytes32), "compute_market: not a coordinator"
    self._measurements[coordinator] = empty(bytes32)
    log CoordinatorRevoked(coordinator=coordinator)


@external
@view
def coordinator_measurement(coordinator: address) -> bytes32:
    """
    @dev Returns a coordinator's attested measurement.
    @param coordinator The 20-byte coordinator address.
    @return bytes32 The measurement (empty: not allowed).
    """
    return self._measurements[coordinator]


@external
@view
def is_coordinator(coordinator: address) -> bool:
    """
    @dev Returns whether a coordinator is allowed.
    @param coordinator The 20-byte coordinator address.
    @return bool Whether it is allowed.
    """
    return self._measurements[coordinator] != empty(bytes32)


@external
@payable
@nonreentrant
def register_device(numeric_class: bytes32, capabilities: uint256, min_fee: uint256):
    """
    @dev Registers the caller's device, staking `msg.value`.
    @param numeric_class The 32-byte numeric class (determinism
           profile) of the device.
    @param capabilities The capability bits.
    @param min_fee The minimum fee per unit, in wei.
    """
    assert self._devices[msg.sender].registered_at == 0, "compute_market: device registered"
    assert numeric_class != empty(bytes32), "compute_market: empty numeric class"
    assert msg.value >= MIN_STAKE, "compute_market: stake too small"
    self._devices[msg.sender] = Device(
        numeric_class=numeric_class,
        capabilities=capabilities,
        min_fee=min_fee,
        stake=msg.value,
        unstake_at=0,
        registered_at=block.timestamp,
    )
    self.total_staked += msg.value
    self._balances[msg.sender] |= _LIVE
    log DeviceRegistered(
        owner=msg.sender, numeric_class=numeric_class, capabilities=capabilities, min_fee=min_fee, stake=msg.value
    )


@external
@payable
@nonreentrant
def add_stake():
    """
    @dev Adds `msg.value` to the caller's device stake and cancels
         a pending unstake.
    """
    assert self._devices[msg.sender].registered_at != 0, "compute_market: no device"
    assert msg.value != 0, "compute_market: zero stake"
    stake: uint256 = self._devices[msg.sender].stake + msg.value
    self._devices[msg.sender].stake = stake
    self._devices[msg.sender].unstake_at = 0
    self.total_staked += msg.value
    log StakeAdded(owner=msg.sender, amount=msg.value, stake=stake)


@external
def request_unstake():
    """
    @dev Announces that the caller's device leaves: its stake may
         be withdrawn from `UNSTAKE_DELAY` on, and it can be slashed
         until then.
    """
    assert self._devices[msg.sender].registered_at != 0, "compute_market: no device"
    assert self._devices[msg.sender].unstake_at == 0, "compute_market: unstake pending"
    unstake_at: uint256 = block.timestamp + UNSTAKE_DELAY
    self._devices[msg.sender].unstake_at = unstake_at
    log UnstakeRequested(owner=msg.sender, unstake_at=unstake_at)


@external
@nonreentrant
def withdraw_stake() -> uint256:
    """
    @dev Pays the caller back its device's whole (remaining) stake
         and deletes the device, once its unstake time has come.
    @notice Effects before the ETH is sent. A fully slashed device
            is deleted and nothing is sent.
    @return uint256 The amount sent, in wei.
    """
    unstake_at: uint256 = self._devices[msg.sender].unstake_at
    assert unstake_at != 0, "compute_market: no unstake requested"
    assert block.timestamp >= unstake_at, "compute_market: unstake delay"
    amount: uint256 = self._devices[msg.sender].stake
    self._devices[msg.sender] = empty(Device)
    self.total_staked -= amount
    log StakeWithdrawn(owner=msg.sender, amount=amount)
    if amount != 0:
        raw_call(msg.sender, b"", value=amount)
    return amount


@external
@view
def device(owner: address) -> Device:
    """
    @dev Returns an account's device (all zero: none).
    @param owner The 20-byte device owner address.
    @return Device The device.
    """
    return self._devices[owner]


@external
@payable
@nonreentrant
def create_job(coordinator: address, max_amount: uint256, expiry: uint256, spec_digest: bytes32) -> uint256:
    """
    @dev Creates a job for an allowed coordinator and escrows its
         maximum amount, sent with the call.
    @param coordinator The 20-byte coordinator address.
    @param max_amount The most the job may pay, in wei
           (`msg.value`).
    @param expiry The timestamp from which no unit is paid and the
           payer may reclaim the rest.
    @param spec_digest The 32-byte digest of the job's spec.
    @return uint256 The new job id.
    """
    assert self._measurements[coordinator] != empty(bytes32), "compute_market: coordinator not allowed"
    assert max_amount != 0, "compute_market: zero amount"
    assert msg.value == max_amount, "compute_market: value is not the amount"
    assert expiry > block.timestamp, "compute_market: expiry in the past"
    assert spec_digest != empty(bytes32), "compute_market: empty spec"
    job_id: uint256 = self.job_count + 1
    self.job_count = job_id
    self._jobs[job_id] = Job(
        payer=msg.sender,
        coordinator=coordinator,
        max_amount=max_amount,
        remaining=max_amount,
        expiry=expiry,
        spec_digest=spec_digest,
        closed=False,
    )
    log JobCreated(
        job_id=job_id,
        payer=msg.sender,
        coordinator=coordinator,
        max_amount=max_amount,
        expiry=expiry,
        spec_digest=spec_digest,
    )
    return job_id


@external
@view
def job(job_id: uint256) -> Job:
    """
    @dev Returns a job (all zero: none).
    @param job_id The 32-byte job id.
    @return Job The job.
    """
    return self._jobs[job_id]


@external
@view
def remaining(job_id: uint256) -> uint256:
    """
    @dev Returns what a job may still pay (0 once closed or
         expired): the coordinator checks it before each dispatch.
    @param job_id The 32-byte job id.
    @return uint256 The amount in wei.
    """
    job: Job = self._jobs[job_id]
    if job.closed or block.timestamp >= job.expiry:
        return 0
    return job.remaining


@external
@view
def unit_paid(job_id: uint256, unit_id: bytes32) -> bool:
    """
    @dev Returns whether a job's unit was paid.
    @param job_id The 32-byte job id.
    @param unit_id The 32-byte unit id.
    @return bool Whether it was paid.
    """
    return self._paid_units[job_id][unit_id]


@external
@nonreentrant
def pay_unit(job_id: uint256, unit_id: bytes32, workers: DynArray[address, MAX_WORKERS], fee_each: uint256):
    """
    @dev Pays each worker that produced a verified unit's agreed
         result `fee_each` out of the job's escrow (credited).
    @notice Only the job's coordinator while allowed, before the
            expiry of an open job; once per unit; distinct, staked
            workers, none slashed for the unit, each with a minimum
            fee at most `fee_each`; never beyond the escrow.
    @param job_id The 32-byte job id.
    @param unit_id The 32-byte unit id.
    @param workers The workers to pay (1 to `MAX_WORKERS`).
    @param fee_each The fee per worker, in wei.
    """
    job: Job = self._jobs[job_id]
    assert msg.sender == job.coordinator, "compute_market: not the coordinator"
    assert self._measurements[msg.sender] != empty(bytes32), "compute_market: coordinator not allowed"
    assert not job.closed, "compute_market: job closed"
    assert block.timestamp < job.expiry, "compute_market: job expired"
    assert not self._paid_units[job_id][unit_id], "compute_market: unit paid"
    assert len(workers) != 0, "compute_market: no workers"
    assert fee_each != 0, "compute_market: zero fee"
    total: uint256 = fee_each * len(workers)
    assert total <= job.remaining, "compute_market: escrow exhausted"
    remaining: uint256 = job.remaining - total
    self._paid_units[job_id][unit_id] = True
    self._jobs[job_id].remaining = remaining
    for i: uint256 in range(MAX_WORKERS):
        if i == len(workers):
            break
        worker: address = workers[i]
        for j: uint256 in range(MAX_WORKERS):
            if j == i:
                break
            assert workers[j] != worker, "compute_market: duplicate worker"
        assert self._devices[worker].stake >= MIN_STAKE, "compute_market: worker not staked"
        assert fee_each >= self._devices[worker].min_fee, "compute_market: fee below minimum"
        assert self._evidence[job_id][worker][unit_id].slashed_at == 0, "compute_market: worker slashed"
        self._balances[worker] += fee_each
    log UnitPaid(job_id=job_id, unit_id=unit_id, workers=workers, fee_each=fee_each, remaining=remaining)


@external
@nonreentrant
def slash(
    worker: address,
    job_id: uint256,
    unit_id: bytes32,
    input_hash: bytes32,
    honest_output: bytes32,
    bad_output: bytes32,
    evidence_cid: bytes32,
):
    """
    @dev Burns the whole stake of a worker that a quorum
         contradicted on a unit and records the evidence.
    @notice Only the job's coordinator while allowed; once per
            (job, worker, unit); the worker must have a device; the
            outputs must differ and the evidence CID be set. Allowed
            after the job's close or expiry (bisection may take
            longer), but not after the device withdrew its stake.
    @param worker The 20-byte address of the contradicted worker.
    @param job_id The 32-byte job id.
    @param unit_id The 32-byte unit id.
    @param input_hash The 32-byte hash of the unit's input.
    @param honest_output The 32-byte hash of the agreed output.
    @param bad_output The 32-byte hash of the worker's output.
    @param evidence_cid The 32-byte CID digest of the evidence
           bundle (signed results, recomputation).
    """
    assert msg.sender == self._jobs[job_id].coordinator, "compute_market: not the coordinator"
    assert self._measurements[msg.sender] != empty(bytes32), "compute_market: coordinator not allowed"
    assert self._devices[worker].registered_at != 0, "compute_market: no device"
    assert self._evidence[job_id][worker][unit_id].slashed_at == 0, "compute_market: already slashed"
    assert honest_output != bad_output, "compute_market: outputs agree"
    assert evidence_cid != empty(bytes32), "compute_market: empty evidence"
    amount: uint256 = self._devices[worker].stake
    self._devices[worker].stake = 0
    self.total_staked -= amount
    self.burned += amount
    self._evidence[job_id][worker][unit_id] = Evidence(
        input_hash=input_hash,
        honest_output=honest_output,
        bad_output=bad_output,
        evidence_cid=evidence_cid,
        amount=amount,
        slashed_at=block.timestamp,
    )
    log Slashed(
        worker=worker,
        job_id=job_id,
        unit_id=unit_id,
        input_hash=input_hash,
        honest_output=honest_output,
        bad_output=bad_output,
        evidence_cid=evidence_cid,
        amount=amount,
    )


@external
@view
def evidence(job_id: uint256, worker: address, unit_id: bytes32) -> Evidence:
    """
    @dev Returns the evidence of a worker's slash for a unit (all
         zero: not slashed).
    @param job_id The 32-byte job id.
    @param worker The 20-byte worker address.
    @param unit_id The 32-byte unit id.
    @return Evidence The evidence.
    """
    return self._evidence[job_id][worker][unit_id]


@external
@nonreentrant
def close_job(job_id: uint256) -> uint256:
    """
    @dev Closes a job and credits the rest of its escrow to the
         payer.
    @notice Only the payer or the coordinator (allowed or not).
    @param job_id The 32-byte job id.
    @return uint256 The refund, in wei.
    """
    job: Job = self._jobs[job_id]
    assert msg.sender == job.payer or msg.sender == job.coordinator, "compute_market: not payer or coordinator"
    return self._close(job_id, job)


@external
@nonreentrant
def reclaim(job_id: uint256) -> uint256:
    """
    @dev Closes an expired job on the payer's behalf and credits it
         the rest of the escrow, whatever became of the coordinator.
    @notice Only the payer, from the expiry on.
    @param job_id The 32-byte job id.
    @return uint256 The refund, in wei.
    """
    job: Job = self._jobs[job_id]
    assert msg.sender == job.payer, "compute_market: not the payer"
    assert block.timestamp >= job.expiry, "compute_market: job not expired"
    return self._close(job_id, job)


@external
@payable
@nonreentrant
def create_federation(
    coordinator: address,
    amount: uint256,
    deadline: uint256,
    spec_digest: bytes32,
    clients: DynArray[address, MAX_CLIENTS],
    open_joining: bool,
) -> uint256:
    """
    @dev Creates a federation for an allowed coordinator and
         escrows its amount, sent with the call.
    @notice The payer may cancel it only until the coordinator
            starts training; then only the coordinator's payouts or
            the deadline release the escrow.
    @param coordinator The 20-byte coordinator address.
    @param amount The escrow, in wei (`msg.value`).
    @param deadline The timestamp before which the coordinator must
           post the payouts; from it on the payer may reclaim.
    @param spec_digest The 32-byte digest of the training spec.
    @param clients The clients named now (distinct, non-zero; may
           be empty when clients may join).
    @param open_joining Whether other clients may join until the
           start.
    @return uint256 The new federation id.
    """
    assert self._measurements[coordinator] != empty(bytes32), "compute_market: coordinator not allowed"
    assert amount != 0, "compute_market: zero amount"
    assert msg.value == amount, "compute_market: value is not the amount"
    assert deadline > block.timestamp, "compute_market: deadline in the past"
    assert spec_digest != empty(bytes32), "compute_market: empty spec"
    assert open_joining or len(clients) != 0, "compute_market: no clients"
    federation_id: uint256 = self.federation_count + 1
    self.federation_count = federation_id
    self._federations[federation_id] = Federation(
        payer=msg.sender,
        coordinator=coordinator,
        amount=amount,
        paid=0,
        deadline=deadline,
        spec_digest=spec_digest,
        scores_cid=empty(bytes32),
        clients=len(clients),
        open_joining=open_joining,
        status=FEDERATION_OPEN,
        started_at=0,
    )
    log FederationCreated(
        federation_id=federation_id,
        payer=msg.sender,
        coordinator=coordinator,
        amount=amount,
        deadline=deadline,
        spec_digest=spec_digest,
        open_joining=open_joining,
    )
    for client: address in clients:
        self._add_client(federation_id, client)
    return federation_id


@external
def join_federation(federation_id: uint256):
    """
    @dev Makes the caller a client of an open federation that lets
         clients join.
    @notice Only before the start and the deadline; once per client;
            at most `MAX_CLIENTS` clients.
    @param federation_id The 32-byte federation id.
    """
    assert self._federations[federation_id].status == FEDERATION_OPEN, "compute_market: federation not open"
    assert self._federations[federation_id].open_joining, "compute_market: joining closed"
    assert block.timestamp < self._federations[federation_id].deadline, "compute_market: federation expired"
    clients: uint256 = self._federations[federation_id].clients
    assert clients < MAX_CLIENTS, "compute_market: too many clients"
    self._federations[federation_id].clients = clients + 1
    self._add_client(federation_id, msg.sender)


@external
def start_federation(federation_id: uint256):
    """
    @dev Records that the coordinator starts training: the clients
         are fixed and the payer can no longer cancel.
    @notice Only the federation's coordinator while allowed, before
            the deadline, with at least one client.
    @param federation_id The 32-byte federation id.
    """
    # Field by field: the whole struct would cost eleven cold reads.
    assert msg.sender == self._federations[federation_id].coordinator, "compute_market: not the coordinator"
    assert self._measurements[msg.sender] != empty(bytes32), "compute_market: coordinator not allowed"
    assert self._federations[federation_id].status == FEDERATION_OPEN, "compute_market: federation not open"
    assert block.timestamp < self._federations[federation_id].deadline, "compute_market: federation expired"
    clients: uint256 = self._federations[federation_id].clients
    assert clients != 0, "compute_market: no clients"
    self._federations[federation_id].status = FEDERATION_RUNNING
    self._federations[federation_id].started_at = block.timestamp
    log FederationStarted(federation_id=federation_id, clients=clients)


@external
@nonreentrant
def settle_federation(
    federation_id: uint256,
    clients: DynArray[address, MAX_CLIENTS],
    amounts: DynArray[uint256, MAX_CLIENTS],
    scores_cid: bytes32,
) -> uint256:
    """
    @dev Posts a running federation's final payouts: credits each
         listed client its amount and the payer the rest.
    @notice Only the federation's coordinator while allowed, before
            the deadline, once; clients of the federation only, each
            at most once; the amounts sum to at most the escrow.
            Clients not listed get nothing.
    @param federation_id The 32-byte federation id.
    @param clients The clients paid (in the order of `amounts`).
    @param amounts The payout of each client, in wei (0 allowed:
           a client that did not help is recorded as paid nothing).
    @param scores_cid The 32-byte CID digest of the per-round
           contribution scores the payouts follow from.
    @return uint256 The refund credited to the payer, in wei.
    """
    federation: Federation = self._federations[federation_id]
    assert msg.sender == federation.coordinator, "compute_market: not the coordinator"
    assert self._measurements[msg.sender] != empty(bytes32), "compute_market: coordinator not allowed"
    assert federation.status == FEDERATION_RUNNING, "compute_market: federation not running"
    assert block.timestamp < federation.deadline, "compute_market: federation expired"
    assert len(clients) == len(amounts), "compute_market: clients and amounts differ"
    assert scores_cid != empty(bytes32), "compute_market: empty scores"
    paid: uint256 = 0
    for i: uint256 in range(MAX_CLIENTS):
        if i == len(clients):
            break
        client: address = clients[i]
        amount: uint256 = amounts[i]
        word: uint256 = self._federation_clients[federation_id][client]
        assert word != 0, "compute_market: not a client"
        # The posted bit makes a second entry for one client revert,
        # so nobody is paid twice within the one settlement there is.
        assert word & _POSTED == 0, "compute_market: duplicate client"
        paid += amount
        assert paid <= federation.amount, "compute_market: payouts exceed escrow"
        self._federation_clients[federation_id][client] = _CLIENT | _POSTED | amount
        self._balances[client] += amount
        log FederationPayout(federation_id=federation_id, client=client, amount=amount)
    refund: uint256 = federation.amount - paid
    self._federations[federation_id].paid = paid
    self._federations[federation_id].scores_cid = scores_cid
    self._federations[federation_id].status = FEDERATION_SETTLED
    self._balances[federation.payer] += refund
    log FederationSettled(federation_id=federation_id, scores_cid=scores_cid, paid=paid, refund=refund)
    return refund


@external
@nonreentrant
def cancel_federation(federation_id: uint256) -> uint256:
    """
    @dev Cancels a federation before training starts and credits
         its whole escrow to the payer.
    @notice Only the payer or the coordinator (allowed or not), and
            only while open: once the coordinator started training
            the payer cannot take the escrow back ("compute_market:
            training started") until the deadline passes unsettled.
    @param federation_id The 32-byte federation id.
    @return uint256 The refund, in wei.
    """
    federation: Federation = self._federations[federation_id]
    assert msg.sender == federation.payer or msg.sender == federation.coordinator, (
        "compute_market: not payer or coordinator"
    )
    assert federation.status != FEDERATION_RUNNING, "compute_market: training started"
    assert federation.status == FEDERATION_OPEN, "compute_market: federation not open"
    return self._refund_federation(federation_id, federation, FEDERATION_CANCELLED)


@external
@nonreentrant
def reclaim_federation(federation_id: uint256) -> uint256:
    """
    @dev Credits the payer the whole escrow of a federation that was
         not settled by its deadline, whatever became of the
         coordinator.
    @notice Only the payer, from the deadline on, while open or
            running.
    @param federation_id The 32-byte federation id.
    @return uint256 The refund, in wei.
    """
    federation: Federation = self._federations[federation_id]
    assert msg.sender == federation.payer, "compute_market: not the payer"
    assert block.timestamp >= federation.deadline, "compute_market: deadline not reached"
    assert federation.status == FEDERATION_OPEN or federation.status == FEDERATION_RUNNING, (
        "compute_market: federation closed"
    )
    return self._refund_federation(federation_id, federation, FEDERATION_RECLAIMED)


@external
@view
def federation(federation_id: uint256) -> Federation:
    """
    @dev Returns a federation (all zero: none).
    @param federation_id The 32-byte federation id.
    @return Federation The federation.
    """
    return self._federations[federation_id]


@external
@view
def participant(federation_id: uint256, client: address) -> Participant:
    """
    @dev Returns a client's place in a federation: whether it is a
         client, whether its payout was posted, and the payout.
    @param federation_id The 32-byte federation id.
    @param client The 20-byte client address.
    @return Participant The client's place (all zero: not a client).
    """
    word: uint256 = self._federation_clients[federation_id][client]
    return Participant(
        joined=word != 0,
        posted=word & _POSTED != 0,
        payout=word & ~(_CLIENT | _POSTED),
    )


@external
@nonreentrant
def withdraw() -> uint256:
    """
    @dev Pays the caller its credited earnings and refunds.
    @notice Pull payment: effects before the ETH is sent.
    @return uint256 The amount sent, in wei.
    """
    word: uint256 = self._balances[msg.sender]
    amount: uint256 = word & ~_LIVE
    assert amount != 0, "compute_market: nothing to withdraw"
    # Keep the live bit: the next credit rewrites the slot.
    self._balances[msg.sender] = word & _LIVE
    log Withdrawn(account=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)
    return amount


@external
@view
def balance_of(account: address) -> uint256:
    """
    @dev Returns the earnings and refunds credited to `account`
         and not yet withdrawn.
    @param account The 20-byte account address.
    @return uint256 The amount in wei.
    """
    return self._balances[account] & ~_LIVE


@internal
def _close(job_id: uint256, job: Job) -> uint256:
    """
    @dev Marks an open job closed and credits the rest of its
         escrow to its payer.
    @param job_id The 32-byte job id.
    @param job The job as read by the caller.
    @return uint256 The refund, in wei.
    """
    assert not job.closed, "compute_market: job closed"
    refund: uint256 = job.remaining
    self._jobs[job_id].closed = True
    self._balances[job.payer] += refund
    log JobClosed(job_id=job_id, closed_by=msg.sender, refund=refund)
    return refund


@internal
def _add_client(federation_id: uint256, client: address):
    """
    @dev Records a client of a federation (the caller counted it).
    @param federation_id The 32-byte federation id.
    @param client The 20-byte client address.
    """
    assert client != empty(address), "compute_market: zero client"
    assert self._federation_clients[federation_id][client] == 0, "compute_market: client joined"
    self._federation_clients[federation_id][client] = _CLIENT
    log FederationJoined(federation_id=federation_id, client=client)


@internal
def _refund_federation(federation_id: uint256, federation: Federation, status: uint8) -> uint256:
    """
    @dev Closes a federation that paid nothing and credits its whole
         escrow to its payer.
    @param federation_id The 32-byte federation id.
    @param federation The federation as read by the caller.
    @param status The status it ends in (cancelled or reclaimed).
    @return uint256 The refund, in wei.
    """
    refund: uint256 = federation.amount
    self._federations[federation_id].status = status
    self._balances[federation.payer] += refund
    log FederationClosed(federation_id=federation_id, closed_by=msg.sender, refund=refund)
    return refund
