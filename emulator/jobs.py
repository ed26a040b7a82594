"""Background jobs on a simulated clock.

A job's simulated age grows with wall-clock (monotonic) time multiplied by the job speed. Jobs are
advanced lazily, at the start of every API request, so no timer thread is needed: Pending for
`queue_seconds`, InProgress for `run_seconds` (with progress), then Success, Failed (finishCode 1,
the item's `refresh_failure` in notes) or Cancelled (finishCode 2). Timestamps are the wall-clock
moments the transitions happened, so they never lie in the future.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from . import model as m
from .errors import ApiError, conflict

ACTIVE = frozenset({"Pending", "InProgress"})
_FINISH = {"Success": 0, "Failed": 1, "Cancelled": 2}


def _wall() -> datetime:
    return datetime.now(UTC)


def _second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


class JobClock:
    def __init__(self, state: m.SiteState, speed: float = 1.0) -> None:
        self.state = state
        self.speed = speed
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._known = -1
        self._active: set[str] = set()

    def set_speed(self, speed: float) -> None:
        self.advance()  # bank the time that passed at the old speed
        self.speed = speed

    def _rescan(self) -> None:
        # Jobs may be added directly to the state (the generator, a test); pick them up cheaply.
        if len(self.state.jobs) != self._known:
            self._active = {j.id for j in self.state.jobs.values() if j.status in ACTIVE}
            self._known = len(self.state.jobs)

    def advance(self) -> None:
        with self._lock:
            now = time.monotonic()
            delta = (now - self._last) * self.speed
            self._last = now
            self._rescan()
            if not self._active:
                return
            wall = _wall()
            for job_id in list(self._active):
                job = self.state.jobs.get(job_id)
                if job is None or job.status not in ACTIVE:
                    self._active.discard(job_id)
                    continue
                job.elapsed += delta
                self._step(job, wall)
                if job.status not in ACTIVE:
                    self._active.discard(job_id)

    def _at(self, job: m.Job, wall: datetime, threshold: float) -> datetime:
        """The wall-clock moment the job's simulated age crossed `threshold`."""
        overshoot = max(0.0, job.elapsed - threshold) / self.speed
        return _second(max(job.created_at, wall - timedelta(seconds=overshoot)))

    def _step(self, job: m.Job, wall: datetime) -> None:
        if job.status == "Pending" and job.elapsed >= job.queue_seconds:
            job.status = "InProgress"
            job.started_at = self._at(job, wall, job.queue_seconds)
        if job.status == "InProgress":
            run_elapsed = job.elapsed - job.queue_seconds
            if run_elapsed >= job.run_seconds:
                self._finish(
                    job,
                    "Failed" if job.failure else "Success",
                    self._at(job, wall, job.queue_seconds + job.run_seconds),
                )
            else:
                # max(0, ...): a job stored as InProgress with little simulated age (the generator's
                # "currently running" jobs) must not report negative progress.
                fraction = max(0.0, run_elapsed) / max(job.run_seconds, 1e-9)
                job.progress = max(job.progress, min(99, int(100 * fraction)))

    def _finish(self, job: m.Job, status: str, when: datetime) -> None:
        job.status = status
        job.finish_code = _FINISH[status]
        job.completed_at = when
        if job.started_at is None:
            job.started_at = when if status != "Cancelled" else None
        if status == "Success":
            job.progress = 100
        elif status == "Failed":
            job.notes = job.failure or "The extract refresh failed."
            self._count_task_failure(job)
        elif status == "Cancelled":
            job.notes = job.notes or "The job was cancelled."

    def _count_task_failure(self, job: m.Job) -> None:
        task = self.state.tasks.get(job.task_id or "")
        if task is not None:
            task.consecutive_failed_count += 1

    # -- operations ---------------------------------------------------------------------------

    def start_refresh(
        self,
        kind: str,
        item: m.Workbook | m.Datasource,
        incremental: bool = False,
        task: m.ExtractRefreshTask | None = None,
    ) -> m.Job:
        self.advance()
        if not item.has_extracts:
            raise ApiError(
                409,
                "409090",
                "Bad Request",
                f"Extract operation for the {kind} '{item.name}' is not allowed: it has no extracts.",
            )
        for job in self.state.jobs.values():
            if job.target_id == item.id and job.status in ACTIVE:
                raise conflict(
                    "409093",
                    f"A refresh job for the {kind} '{item.name}' is already queued.",
                    summary="Resource Conflict",
                )
        job = m.Job(
            id=m.new_id(),
            job_type="increment_extracts" if incremental else "refresh_extracts",
            target_kind=kind,
            target_id=item.id,
            target_name=item.name,
            created_at=m.utcnow(),
            queue_seconds=1.0,
            run_seconds=item.refresh_seconds,
            failure=item.refresh_failure,
            priority=task.priority if task else 50,
            task_id=task.id if task else None,
        )
        with self._lock:
            self.state.jobs[job.id] = job
            self._active.add(job.id)
            self._known = len(self.state.jobs)
        return job

    def cancel(self, job: m.Job) -> m.Job:
        self.advance()
        with self._lock:
            if job.status in ACTIVE:
                self._finish(job, "Cancelled", _second(_wall()))
                self._active.discard(job.id)
        return job
