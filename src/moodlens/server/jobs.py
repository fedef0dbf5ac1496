"""The job store: one table of analyses, in SQLite by default or any SQLAlchemy URL.

Every state change is one short transaction, so the web process and the analysis worker
processes can share the database; a job is claimed with a conditional UPDATE, so two
workers never take the same one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import DateTime, Float, Integer, String, Text, create_engine, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

STATUSES = ("queued", "running", "done", "failed")
LIVE = "live"  # the stage of a running live session (server/live.py)


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Job:
    id: str
    status: str
    stage: str | None
    progress: float
    error: str | None
    filename: str
    size_bytes: int
    attempts: int
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _view(row: JobRow) -> Job:
    return Job(row.id, row.status, row.stage, round(row.progress, 4), row.error, row.filename, row.size_bytes,
               row.attempts, row.created_at.isoformat(timespec="seconds"),
               row.updated_at.isoformat(timespec="seconds"))


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(connection: Any, _record: Any) -> None:
        # WAL lets the page read while a worker process writes progress
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


class JobStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        Base.metadata.create_all(self.engine)
        self.session = sessionmaker(self.engine, expire_on_commit=False)

    def create(self, filename: str, size_bytes: int, job_id: str | None = None, status: str = "queued",
               stage: str | None = None) -> Job:
        """A new job: `queued` for the workers, or `running` at `stage` LIVE for a live session,
        which the workers never claim."""
        now = _now()
        row = JobRow(id=job_id or uuid.uuid4().hex, status=status, stage=stage, progress=0.0, error=None,
                     filename=filename[:255], size_bytes=size_bytes, attempts=0, created_at=now, updated_at=now)
        with self.session.begin() as s:
            s.add(row)
        return _view(row)

    def get(self, job_id: str) -> Job | None:
        with self.session() as s:
            row = s.get(JobRow, job_id)
            return _view(row) if row else None

    def page(self, offset: int = 0, limit: int = 20) -> tuple[list[Job], int]:
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(JobRow)) or 0
            rows = s.scalars(select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id).offset(offset).limit(limit))
            return [_view(r) for r in rows], total

    def counts(self) -> dict[str, int]:
        with self.session() as s:
            found = dict(s.execute(select(JobRow.status, func.count()).group_by(JobRow.status)).all())
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def claim(self) -> Job | None:
        """The oldest queued job, now marked running; None when the queue is empty."""
        while True:
            with self.session.begin() as s:
                candidate = s.scalar(select(JobRow.id).where(JobRow.status == "queued")
                                     .order_by(JobRow.created_at, JobRow.id).limit(1))
                if candidate is None:
                    return None
                taken = s.execute(update(JobRow).where(JobRow.id == candidate, JobRow.status == "queued")
                                  .values(status="running", stage="starting", progress=0.0,
                                          attempts=JobRow.attempts + 1, updated_at=_now())).rowcount
            if taken:
                return self.get(candidate)

    def progress(self, job_id: str, stage: str, progress: float) -> None:
        with self.session.begin() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "running")
                      .values(stage=stage, progress=progress, updated_at=_now()))

    def finish(self, job_id: str, error: str | None = None, stage: str = "done") -> None:
        """A running job ends `done` (at `stage`: "cut off" for a live session that did not end
        cleanly), or `failed` with its one-line reason. Only once."""
        with self.session.begin() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "running").values(
                status="failed" if error else "done", stage=None if error else stage,
                progress=1.0 if error is None else JobRow.progress, error=error, updated_at=_now()))

    def retry(self, job_id: str, max_attempts: int, reason: str) -> bool:
        """A running job whose worker died goes back to the queue, unless it has already had
        `max_attempts`: then it fails with `reason`, so a file that kills workers can't loop."""
        return self._retry(JobRow.id == job_id, max_attempts, reason) > 0

    def requeue_running(self, max_attempts: int = 3) -> int:
        """Jobs a crash or restart left `running` go back to the queue (or fail, past
        `max_attempts`); returns how many were queued again. Live sessions are not: see end_live."""
        return self._retry(JobRow.stage.is_distinct_from(LIVE), max_attempts,
                           "interrupted while running (server restart or worker crash)")

    def end_live(self, reason: str) -> int:
        """Live sessions a crash left `running` fail with `reason`: their stream is gone."""
        with self.session.begin() as s:
            return s.execute(update(JobRow).where(JobRow.status == "running", JobRow.stage == LIVE).values(
                status="failed", stage=None, error=reason, updated_at=_now())).rowcount

    def _retry(self, which: Any, max_attempts: int, reason: str) -> int:
        running = (which, JobRow.status == "running")
        with self.session.begin() as s:
            queued = s.execute(update(JobRow).where(*running, JobRow.attempts < max_attempts)
                               .values(status="queued", stage=None, progress=0.0, updated_at=_now())).rowcount
            s.execute(update(JobRow).where(*running).values(
                status="failed", stage=None, updated_at=_now(),
                error=f"{reason}; gave up after {max_attempts} attempts"))
        return queued

    def delete(self, job_id: str) -> bool:
        with self.session.begin() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                return False
            s.delete(row)
            return True
