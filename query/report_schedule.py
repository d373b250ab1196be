"""Scheduled reports: config entries that write a report on a cron schedule to a directory or an S3 prefix.

Configuration: ``GITAUDIT_REPORT_SCHEDULES`` names a YAML file::

    schedules:
      - name: soc2-weekly                 # letters, digits, . _ -
        type: soc2                        # soc2 | gdpr | security | usage
        org: [acme]                       # optional; absent: every organization
        schedule: "0 6 * * 1"             # 5-field cron (gitaudit.query.report_cron), in tz
        tz: Europe/Berlin                 # zone of the schedule, the period bounds and day buckets
        period: previous_week             # previous_day | previous_week | previous_month
        formats: [html, json]             # any of html, json, csv (zip), pdf
        destination: /var/reports         # a directory, or s3://bucket/prefix

Each run builds the report for the *previous complete* local day, ISO week
(Monday to Monday) or month before the fire time, renders it in every format
and writes ``<destination>/<name>/<type>_<from>_<to>.<ext>`` (dates local,
``YYYY-MM-DD``; ``csv`` is the zip of every table). Directory writes are
atomic (temporary file + rename); S3 writes are one ``PutObject`` each
(boto3; endpoint ``GITAUDIT_S3_ENDPOINT_URL``, region ``GITAUDIT_S3_REGION``,
credentials from boto3's usual chain), with the report's SHA-256 as object
metadata ``sha256``. Every run is recorded as ``audit.export`` events
(reader ``schedule:<name>``), like a report fetched through the API.

The scheduler (:func:`start_report_scheduler` / :func:`stop_report_scheduler`,
called from the app lifespan) is one asyncio task: it sleeps until the next
fire time of any entry (re-checking at least every
``GITAUDIT_REPORT_SCHEDULER_POLL_S`` seconds, default 60), runs due entries in
a worker thread, logs a failed run (never its credentials) and carries on.
Runs missed while the server was down are not made up; run ``gitaudit report``
for them. In a cluster, configure schedules on one replica only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .background import cancel_task
from .report_cron import CronError, CronSchedule

__all__ = ["ReportSchedule", "ScheduleError", "ScheduleSettings", "load_schedules", "period_bounds",
           "run_due", "run_schedule", "start_report_scheduler", "stop_report_scheduler"]

log = logging.getLogger("gitaudit.reports")
_EXT = {"html": "html", "json": "json", "csv": "zip", "pdf": "pdf"}


class ScheduleError(ValueError):
    """Invalid schedule configuration; ``str()`` names the entry and field."""


class ScheduleSettings(BaseSettings):
    """Scheduler settings (``GITAUDIT_`` prefix; see the module doc)."""

    model_config = SettingsConfigDict(env_prefix="GITAUDIT_", extra="ignore")

    report_schedules: str | None = None
    report_scheduler_poll_s: float = Field(60.0, gt=0)
    s3_endpoint_url: str | None = None
    s3_region: str | None = None


class ReportSchedule(BaseModel):
    """One scheduled report (fields as in the module doc)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    type: Literal["soc2", "gdpr", "security", "usage"]
    org: list[str] | None = None
    schedule: str
    tz: str = "UTC"
    period: Literal["previous_day", "previous_week", "previous_month"] = "previous_day"
    formats: list[Literal["html", "json", "csv", "pdf"]] = Field(default_factory=lambda: ["html", "json"],
                                                                 min_length=1)
    destination: str = Field(min_length=1)
    integrity: bool = True

    @field_validator("org", mode="before")
    @classmethod
    def _org(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        CronSchedule.parse(value)
        return value

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value[:60]!r}") from None
        return value

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str) -> str:
        if value.startswith("s3://") and not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", value):
            raise ValueError("an S3 destination reads s3://bucket/prefix")
        return value

    def cron(self) -> CronSchedule:
        """The parsed schedule."""
        return CronSchedule.parse(self.schedule)


def load_schedules(path: str | Path) -> list[ReportSchedule]:
    """Read the schedule file (a mapping with ``schedules``, or a bare list).

    Raises:
        ScheduleError: unreadable file, bad YAML, an invalid entry (index, field), or duplicate names.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScheduleError(f"cannot read report schedules {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScheduleError(f"report schedules {path} are not valid YAML: {str(exc)[:200]}") from None
    items = data.get("schedules") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ScheduleError(f"report schedules {path}: expected a list under 'schedules'")
    out: list[ReportSchedule] = []
    for i, raw in enumerate(items):
        try:
            entry = ReportSchedule.model_validate(raw)
        except (ValidationError, CronError) as exc:
            first = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": ("schedule",), "msg": str(exc)}
            loc = ".".join(str(p) for p in first.get("loc", ()))
            raise ScheduleError(f"report schedules {path}: schedules[{i}].{loc}: {first.get('msg')}") from None
        if any(e.name == entry.name for e in out):
            raise ScheduleError(f"report schedules {path}: duplicate name {entry.name!r}")
        out.append(entry)
    return out


def period_bounds(period: str, fire_ns: int, tz: str) -> tuple[int, int, str, str]:
    """The previous complete local day / ISO week / month before ``fire_ns``.

    Returns:
        ``(start_ns, end_ns, start_date, end_date)``: Unix ns UTC and local ``YYYY-MM-DD``.
    """
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(fire_ns / 1e9, tz=timezone.utc).astimezone(zone)
    today = datetime(local.year, local.month, local.day)
    if period == "previous_day":
        end, start = today, today - timedelta(days=1)
    elif period == "previous_week":
        end = today - timedelta(days=today.weekday())
        start = end - timedelta(days=7)
    elif period == "previous_month":
        end = today.replace(day=1)
        start = (end - timedelta(days=1)).replace(day=1)
    else:
        raise ScheduleError(f"unknown period {period!r}")

    def ns(d: datetime) -> int:
        return int(d.replace(tzinfo=zone).astimezone(timezone.utc).timestamp()) * 1_000_000_000

    return ns(start), ns(end), start.date().isoformat(), end.date().isoformat()


def _write(destination: str, key: str, body: bytes, media: str, digest: str, settings: ScheduleSettings) -> str:
    if destination.startswith("s3://"):
        import boto3

        bucket, _, prefix = destination[len("s3://"):].partition("/")
        object_key = f"{prefix.strip('/')}/{key}" if prefix.strip("/") else key
        client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region)
        client.put_object(Bucket=bucket, Key=object_key, Body=body, ContentType=media, Metadata={"sha256": digest})
        return f"s3://{bucket}/{object_key}"
    path = Path(destination, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


def run_schedule(store: Any, entry: ReportSchedule, fire_ns: int, *, ingest: Any = None,
                 settings: ScheduleSettings | None = None, **options: Any) -> list[str]:
    """Build, render and write one scheduled report for the period before ``fire_ns``.

    Args:
        ingest: the server's ingest service; the run is recorded as ``audit.export`` when given.
        options: passed to :func:`gitaudit.query.reports.build_report` (``anomaly_config``, ...).

    Returns:
        Where each format was written (paths or ``s3://`` URLs), in ``entry.formats`` order.
    """
    from .report_render import render
    from .reports import build_report

    settings = settings or ScheduleSettings()
    start, end, first, last = period_bounds(entry.period, fire_ns, entry.tz)
    doc = build_report(store, entry.type, allowed_orgs=entry.org, start_ns=start, end_ns=end, tz=entry.tz,
                       generated_at_ns=fire_ns, integrity=entry.integrity, **options)
    written = []
    for fmt in entry.formats:
        body, media, _ = render(doc, fmt)
        key = f"{entry.name}/{entry.type}_{first}_{last}.{_EXT[fmt]}"
        written.append(_write(entry.destination, key, body, media, doc["sha256"], settings))
    if ingest is not None:
        from .read_audit import Reader, record_read

        record_read(ingest, Reader("", f"schedule:{entry.name}"), "audit.export",
                    endpoint=f"schedule:{entry.name}",
                    query={"type": entry.type, "from": doc["parameters"]["from"], "to": doc["parameters"]["to"],
                           "formats": list(entry.formats), "sha256": doc["sha256"]},
                    rows=int(doc["data_range"]["events"]), organizations=entry.org)
    return written


def run_due(state: Any, entries: list[ReportSchedule], since_ns: int, now_ns: int) -> list[tuple[str, int]]:
    """Run every entry with a fire time in ``(since_ns, now_ns]`` (the latest one, once); never raises.

    Args:
        state: object with ``store`` and optionally ``ingest`` (the app's ``app.state``).

    Returns:
        ``(entry name, fire time ns)`` of the runs that succeeded.
    """
    done = []
    for entry in entries:
        fire = None
        nxt = entry.cron().next_after(since_ns, entry.tz)
        while nxt is not None and nxt <= now_ns:
            fire, nxt = nxt, entry.cron().next_after(nxt, entry.tz)
        if fire is None:
            continue
        try:
            run_schedule(state.store, entry, fire, ingest=getattr(state, "ingest", None),
                         anomaly_config=getattr(state, "anomaly_config", None),
                         auth_enabled=getattr(state, "auth_enabled", None))
            done.append((entry.name, fire))
            log.info("scheduled report %s written", entry.name)
        except Exception as exc:  # noqa: BLE001 - one failed report never stops the others
            log.error("scheduled report %s failed: %s: %s", entry.name, type(exc).__name__, str(exc)[:300])
    return done


async def _loop(app: Any, entries: list[ReportSchedule], poll_s: float) -> None:
    since = time.time_ns()
    while True:
        upcoming = [n for e in entries if (n := e.cron().next_after(since, e.tz)) is not None]
        wait_s = min([poll_s, *((n - time.time_ns()) / 1e9 for n in upcoming)])
        await asyncio.sleep(max(0.05, wait_s))
        now = time.time_ns()
        run = asyncio.ensure_future(asyncio.to_thread(run_due, app.state, entries, since, now))
        try:
            await asyncio.shield(run)
        except asyncio.CancelledError:
            await asyncio.gather(run, return_exceptions=True)
            raise
        since = now


def start_report_scheduler(app: Any, settings: ScheduleSettings | None = None,
                           entries: list[ReportSchedule] | None = None) -> asyncio.Task | None:
    """Start the scheduler task on the running loop (from the lifespan); None when nothing is scheduled.

    Args:
        entries: the schedules (default: read from ``GITAUDIT_REPORT_SCHEDULES``).

    Raises:
        ScheduleError: the schedule file is invalid (the server should not start with a broken one).
    """
    settings = settings or ScheduleSettings()
    if entries is None:
        entries = load_schedules(settings.report_schedules) if settings.report_schedules else []
    task = None
    if entries:
        task = asyncio.get_running_loop().create_task(_loop(app, list(entries), settings.report_scheduler_poll_s),
                                                      name="gitaudit-report-scheduler")
    app.state.report_scheduler_task = task
    return task


async def stop_report_scheduler(app: Any) -> None:
    """Cancel the scheduler task and wait for it (a report being written is finished first)."""
    await cancel_task(app, "report_scheduler_task")
