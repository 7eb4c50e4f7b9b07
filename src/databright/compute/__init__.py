"""The computation market: an attested coordinator schedules training work on untrusted
workers and verifies it by redundancy (issue 12; in progress).

- :mod:`.protocol`: signed envelopes (every request and result bound to its sender's key, a
  nonce and an expiry; tensors as safetensors);
- :mod:`.state`: the coordinator's state in SQL (SQLite embedded, PostgreSQL at scale);
- :mod:`.units`: a work unit, k deterministic optimizer steps from an agreed checkpoint;
- :mod:`.replication`: triple modular redundancy, tolerance, the coordinator as referee, evidence;
- :mod:`.exposure`: no worker (or owner) is ever sent more than 5% of a dataset;
- :mod:`.coordinator` and :mod:`.worker`: the pull protocol without its transport;
- :mod:`.market`: the ComputeMarket contract from Python (coordinators, devices, jobs, per-unit
  pay and slashing with evidence by CID) and ChainSettlement, which settles verdicts on-chain;
- :mod:`.attestation`: providers (software, Intel DCAP) turning evidence into verified claims;
- :mod:`.aggregation` and :mod:`.federated`: robust aggregation and the federated mode;
  :mod:`.federation` and :mod:`.federation_client`: its networked coordinator and clients;
- :mod:`.splitting` and :mod:`.split_relay`: a model's layers split across workers, the
  coordinator relaying activations and gradients, so that no worker holds the whole model.
"""

from databright.compute.aggregation import (
    DEFAULT_RULE,
    RULES,
    Aggregator,
    coordinate_median,
    krum,
    mean,
    multi_krum,
    trimmed_mean,
)
from databright.compute.attestation import (
    AttestationProvider,
    Claims,
    DcapProvider,
    SoftwareProvider,
    check_measurement,
    check_report_data,
    dcap_evidence,
    evaluator_attestation,
    report_data_for,
    require_hardware,
)
from databright.compute.coordinator import Coordinator, CoordinatorAttestation, JobStatus, Quota
from databright.compute.exposure import EXPOSURE_LIMIT, ExposureLedger
from databright.compute.federated import (
    Attack,
    Client,
    FederatedResult,
    check_scores_evidence,
    payout_shares,
    payout_wei,
    run_federated,
    scores_evidence,
    settle_contributions,
)
from databright.compute.federation import (
    FederationCoordinator,
    FederationStore,
    RoundOffer,
    UpdateReceipt,
    federation_clients,
)
from databright.compute.federation_client import FederationClient, federation_transport
from databright.compute.market import (
    ChainSettlement,
    ComputeMarket,
    DeviceInfo,
    FederationInfo,
    FederationParticipant,
    FederationSettlement,
    FederationStatus,
    JobInfo,
    SlashRecord,
    UnitSettlement,
)
from databright.compute.protocol import Envelope, open_envelope, seal
from databright.compute.replication import (
    Evidence,
    RefereeRun,
    ReplicationPolicy,
    Verdict,
    bisect_group,
    run_unit_traced,
)
from databright.compute.split_relay import RelayedStageWorker, SplitRelay
from databright.compute.splitting import (
    SplitPlan,
    SplitTraining,
    StageEvidence,
    StageHoldings,
    StageWorker,
)
from databright.compute.state import ComputeState, SqlComputeState
from databright.compute.units import UnitPayload, WorkUnit, run_unit
from databright.compute.worker import LateCheatWorker, Worker, verify_coordinator

__all__ = [
    "DEFAULT_RULE",
    "EXPOSURE_LIMIT",
    "RULES",
    "Aggregator",
    "Attack",
    "AttestationProvider",
    "ChainSettlement",
    "Claims",
    "Client",
    "ComputeMarket",
    "ComputeState",
    "Coordinator",
    "CoordinatorAttestation",
    "DcapProvider",
    "DeviceInfo",
    "Envelope",
    "Evidence",
    "ExposureLedger",
    "FederatedResult",
    "FederationClient",
    "FederationCoordinator",
    "FederationInfo",
    "FederationParticipant",
    "FederationSettlement",
    "FederationStatus",
    "FederationStore",
    "JobInfo",
    "JobStatus",
    "LateCheatWorker",
    "Quota",
    "RefereeRun",
    "RelayedStageWorker",
    "ReplicationPolicy",
    "RoundOffer",
    "SlashRecord",
    "SoftwareProvider",
    "SplitPlan",
    "SplitRelay",
    "SplitTraining",
    "SqlComputeState",
    "StageEvidence",
    "StageHoldings",
    "StageWorker",
    "UnitPayload",
    "UnitSettlement",
    "UpdateReceipt",
    "Verdict",
    "WorkUnit",
    "Worker",
    "bisect_group",
    "check_measurement",
    "check_report_data",
    "check_scores_evidence",
    "coordinate_median",
    "dcap_evidence",
    "evaluator_attestation",
    "federation_clients",
    "federation_transport",
    "krum",
    "mean",
    "multi_krum",
    "open_envelope",
    "payout_shares",
    "payout_wei",
    "report_data_for",
    "require_hardware",
    "run_federated",
    "run_unit",
    "run_unit_traced",
    "scores_evidence",
    "seal",
    "settle_contributions",
    "trimmed_mean",
    "verify_coordinator",
]
