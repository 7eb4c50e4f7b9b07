"""The computation market: an attested coordinator schedules training work on untrusted
workers and verifies it by redundancy (issue 12; in progress).

- :mod:`.protocol`: signed envelopes (every request and result bound to its sender's key, a
  nonce and an expiry; tensors as safetensors);
- :mod:`.state`: the coordinator's state in SQL (SQLite embedded, PostgreSQL at scale);
- :mod:`.units`: a work unit, k deterministic optimizer steps from an agreed checkpoint;
- :mod:`.replication`: triple modular redundancy, tolerance, the coordinator as referee, evidence;
- :mod:`.exposure`: no worker (or owner) is ever sent more than 5% of a dataset;
- :mod:`.coordinator` and :mod:`.worker`: the pull protocol without its transport;
- :mod:`.attestation`: providers (software, Intel DCAP) turning evidence into verified claims;
- :mod:`.aggregation` and :mod:`.federated`: robust aggregation and the federated mode.
"""

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
from databright.compute.coordinator import Coordinator, JobStatus
from databright.compute.exposure import EXPOSURE_LIMIT, ExposureLedger
from databright.compute.protocol import Envelope, open_envelope, seal
from databright.compute.replication import Evidence, ReplicationPolicy, Verdict
from databright.compute.state import ComputeState, SqlComputeState
from databright.compute.units import UnitPayload, WorkUnit, run_unit
from databright.compute.worker import Worker

__all__ = [
    "EXPOSURE_LIMIT",
    "AttestationProvider",
    "Claims",
    "ComputeState",
    "Coordinator",
    "DcapProvider",
    "Envelope",
    "Evidence",
    "ExposureLedger",
    "JobStatus",
    "ReplicationPolicy",
    "SoftwareProvider",
    "SqlComputeState",
    "UnitPayload",
    "Verdict",
    "WorkUnit",
    "Worker",
    "check_measurement",
    "check_report_data",
    "dcap_evidence",
    "evaluator_attestation",
    "open_envelope",
    "report_data_for",
    "require_hardware",
    "run_unit",
    "seal",
]
