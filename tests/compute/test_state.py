"""The SQL compute state on SQLite and PostgreSQL: uniqueness makes uploads idempotent."""

from __future__ import annotations

import pytest

from databright.compute.state import JobRecord, ResultRecord, SqlComputeState, UnitRecord
from databright.errors import InvalidArgument, NotFound


def test_state_round_trips_and_refuses_duplicates(database_url: str) -> None:
    s = SqlComputeState(database_url)
    try:
        assert s.use_nonce("0xA", "n1", 100, 50) and not s.use_nonce("0xA", "n1", 100, 60)
        assert s.use_nonce("0xA", "n1", 300, 200)  # the old one expired and was pruned
        digest = s.put_blob(b"weights")
        assert s.put_blob(b"weights") == digest and s.get_blob(digest) == b"weights"
        with pytest.raises(NotFound):
            s.get_blob("0x00")
        w = s.add_worker("0xW", "0xO", "c", 1.0)
        assert s.add_worker("0xW", "0xO", "c", 2.0) == w
        with pytest.raises(InvalidArgument, match="keeps its class"):
            s.add_worker("0xW", "0xO", "other", 3.0)
        s.record_outcome("0xW", True)
        assert s.get_worker("0xW") is not None and s.get_worker("0xW").valid_results == 1  # type: ignore[union-attr]
        job = s.add_job(JobRecord(0, "d", "{}", digest, 10, 2, 2, 0, digest, "running", 0, 1))
        unit = s.add_unit(UnitRecord(0, job, 0, 0, 2, digest, (1, 2), 0, "open", 0, None, None))
        assert s.get_unit(unit).example_ids == (1, 2)
        s.fix_unit_group(unit, "c", 3)
        s.fix_unit_group(unit, "d", 1)  # the group is fixed once
        assert (s.get_unit(unit).numeric_class, s.get_unit(unit).replicas) == ("c", 3)
        assert s.add_assignment(unit, "0xW", 1.0, 5.0) and not s.add_assignment(
            unit, "0xW", 2.0, 6.0
        )
        assert s.expire_assignments(4.0) == 0 and s.expire_assignments(6.0) == 1
        r = ResultRecord(unit, "0xW", digest, {"sender": "0xW"}, "0x01", 7.0)
        assert s.add_result(r) and not s.add_result(r)
        assert s.results(unit) == [r]
        s.add_exposure("d", "0xW", [1, 2])
        s.add_exposure("d", "0xW", [2, 3])
        assert s.exposure("d", "0xW") == {1, 2, 3} and s.exposure_counts("d") == {"0xW": 3}
        s.finish_unit(unit, digest)
        s.advance_job(job, digest, True)
        assert s.open_units() == [] and s.get_job(job).state == "done"
        s.add_evidence(job, unit, "0xW", {"worker": "0xW"})
        assert s.evidence(job) == [{"worker": "0xW"}]
        # listings for the per-job report and the shard reallocation, and results' traces
        assert [u.unit_id for u in s.job_units(job)] == [unit] and s.job_units(job + 1) == []
        assert [w.address for w in s.workers()] == ["0xW"]
        assert s.trace(unit, "0xW") is None
        s.add_trace(unit, "0xW", digest)
        s.add_trace(unit, "0xW", "0x00")  # a result's trace is fixed once, like the result
        assert s.trace(unit, "0xW") == digest
        # the reallocation's count of shards, and a worker's held units among its history
        again = s.add_unit(UnitRecord(0, job, 1, 2, 2, digest, (1, 2), 0, "open", 0, None, None))
        s.add_unit(UnitRecord(0, job, 2, 4, 2, digest, (3,), 0, "open", 0, None, None))
        assert s.shard_uses(job) == {(1, 2): 2, (3,): 1} and s.shard_uses(job + 1) == {}
        assert s.add_assignment(again, "0xW", 7.0, 9.0)
        assert [a.unit_id for a in s.assignments(worker="0xW", state="assigned")] == [again]
        assert [a.unit_id for a in s.assignments(worker="0xW")] == [unit, again]
        assert [a.state for a in s.assignments(unit_id=unit, worker="0xW")] == ["submitted"]
        assert s.assignments(unit_id=again, state="expired") == []
    finally:
        s.close()
