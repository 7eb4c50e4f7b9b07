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
        workers that a quorum contradicts, with the evidence on-chain.
        The work itself, its replication and its verification happen
        off-chain under an attested coordinator; this contract only
        holds the money and the record.

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

        Money. Every wei is in exactly one place: a device's stake, a
        job's remaining escrow, an account's credited balance, or
        burned. Earnings and refunds are pull payments (`withdraw`), so
        a reverting or reentrant receiver cannot block a payment, a
        close or a slash. Every state-changing function that touches
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
