"""Applying retention: plan what leaves the store, archive it, verify, and only then delete.

**Per-row retention, computed at apply time.** Each stored event carries the
retention that applies to it through its own columns: the policy set is
compiled to one SQL expression over the row (EventName, OrgId, LogAttributes,
the event's own ``audit.retention.days``; see
:func:`gitaudit.query.retention_policies.compile_policy_set`) that yields the
governing policy and its days, and the row's end of retention is
``Timestamp + days``. We chose this over an ALTER-updated ``RetainUntil``
column because:

* changing a policy applies to existing events at once (the next plan
  evaluates the new policy), with no mutation rewriting every part of the
  table after each policy change;
* stored rows are never modified: ``gitaudit verify`` hashes them, and a
  per-row column updated by mutations would either have to be left out of
  the digests or break them;
* the API's ``/retention/governing/{uid}`` and this planner use the same rule
  (a test pins that Python and SQL agree).

**A run** (:func:`apply_retention`) is a job with persisted state, so it can
crash at any point and be run again without loss or duplicates:

1. *plan*: job ``planning``; the eligible rows (retention ended at the job's
   cutoff, not under a legal hold) are pinned in ``retention_job_rows`` with
   the object key they go to; steps are derived from them (one per
   organization and UTC day: an ``archive`` step for rows a policy wants
   archived, a ``delete`` step for the rest and for rows already in a verified
   archive object, e.g. restored ones); job ``running``. A crash during
   planning leaves a ``planning`` job, which the next run discards (nothing
   was uploaded or deleted yet).
2. per archive step: export the pinned rows as Parquet, upload (skipped when
   the deterministic key already holds an object: it is adopted and verified),
   write the manifest, mark ``uploaded``; read both back and verify (checksum,
   row count, the exact uids), mark ``verified``; delete the pinned rows that
   no legal hold covers *now* (``ALTER TABLE ... DELETE`` with
   ``mutations_sync = 2``), mark ``deleted``. Delete steps skip to the delete.
3. job ``done``; one ``security.event`` (``audit.retention.run``) per
   organization and policy with the archived, deleted and held counts.

A run first resumes every unfinished job of its scope, then plans a new one.
Deleted counts are "pinned rows no longer in the store", so a step resumed
after its delete reports the same numbers. Crash points for tests:
:data:`CRASH_POINTS`, raised through the ``fault`` callback.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.events import uuid7

from .archive import (
    ORG_KEY_PART_SQL,
    ArchiveError,
    ArchiveTarget,
    build_manifest,
    export_parquet,
    manifest_key,
    verify_object,
)
from .legal_hold import LegalHold, active_holds, holds_sql
from .retention_policies import NS_PER_DAY, PolicySet, RetentionSettings, compile_policy_set, load_policy_set
from .store.client import Store

__all__ = ["CRASH_POINTS", "ApplyReport", "PlanGroup", "RetentionBusy", "RetentionPlan", "RetentionRuntime",
           "apply_retention", "deleted_by_retention", "list_jobs", "plan_retention", "server_event_recorder"]

log = logging.getLogger("gitaudit.retention")

#: Where ``fault(point, step_key)`` is called during a run (tests raise there).
CRASH_POINTS = ("after_pin", "after_plan", "after_upload", "after_manifest", "after_mark_uploaded",
                "after_verify", "after_mark_verified", "after_delete", "after_mark_deleted")

_STEP_COLUMNS = ["job_id", "step_key", "kind", "organization", "day", "row_count", "min_ts_ns", "max_ts_ns",
                 "policies", "compression", "lock_days", "state", "sha256", "bytes", "deleted_count",
                 "held_count", "manifest_key", "version"]
_JOB_COLUMNS = ["job_id", "created_at_ns", "cutoff_ns", "state", "organizations", "all_orgs", "created_by",
                "summary", "version"]
_run_locks: dict[str, threading.Lock] = {}
_run_locks_guard = threading.Lock()


class RetentionBusy(RuntimeError):
    """Another retention run is in progress in this process."""


def server_event_recorder(ingest: Any) -> Callable[..., None]:
    """A ``record(security_event_type, attributes, body, outcome='success')`` writing ``security.event`` records.

    Errors are logged, never raised: the audit of a run must not undo the run.
    ``ingest`` None gives a recorder that does nothing.
    """
    def record(event_type: str, attributes: dict[str, Any], body: str, outcome: str = "success") -> None:
        if ingest is None:
            return
        from .server_events import record_server_events, server_record

        attrs = {sc.SECURITY_EVENT_TYPE: event_type, sc.SECURITY_EVENT_SEVERITY: "info",
                 sc.SECURITY_EVENT_DETECTION_METHOD: "gitaudit-server", **attributes}
        try:
            record_server_events(ingest, [server_record(str(sc.EventName.SECURITY_EVENT), attrs, body,
                                                        outcome=outcome)])
        except Exception as exc:  # noqa: BLE001
            log.error("could not record %s event: %s", event_type, type(exc).__name__)

    return record


@dataclass
class RetentionRuntime:
    """What a retention run needs: store, settings, archive target, ingest (for audit events).

    ``actor``: who runs it (recorded in events and jobs).
    """

    store: Store
    settings: RetentionSettings = field(default_factory=RetentionSettings)
    archive: ArchiveTarget | None = None
    ingest: Any = None
    actor: str = "gitaudit-retention"

    def policy_set(self) -> PolicySet:
        """The live policies (reloaded on every call)."""
        return load_policy_set(self.store, self.settings)

    @property
    def record(self) -> Callable[..., None]:
        """The server-event recorder of :attr:`ingest`."""
        return server_event_recorder(self.ingest)


# --- plan -----------------------------------------------------------------------------


@dataclass
class PlanGroup:
    """Rows of one policy, partition (``YYYYMM``), organization and UTC day, and what happens to them.

    ``action``: ``archive_delete`` (archived, verified, then deleted), ``delete``
    (policy without archive), ``delete_archived`` (already in a verified
    archive object, e.g. restored), ``held`` (kept: a legal hold covers them).
    """

    policy: str
    partition: int
    organization: str
    day: str
    action: str
    rows: int
    min_ts_ns: int
    max_ts_ns: int


@dataclass
class RetentionPlan:
    """What a run would do at ``cutoff_ns`` (UTC ns), plus unfinished jobs a run resumes first."""

    cutoff_ns: int
    groups: list[PlanGroup]
    pending_jobs: list[dict[str, Any]] = field(default_factory=list)
    needs_archive_target: bool = False

    def totals(self) -> dict[str, int]:
        """``{"archive": rows archived, "delete": rows deleted, "held": rows kept by holds}``."""
        archive = sum(g.rows for g in self.groups if g.action == "archive_delete")
        delete = sum(g.rows for g in self.groups if g.action != "held")
        held = sum(g.rows for g in self.groups if g.action == "held")
        return {"archive": archive, "delete": delete, "held": held}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the API's ``RetentionPlanPublic``)."""
        return {"cutoff_ns": str(self.cutoff_ns), "totals": self.totals(),
                "groups": [{**asdict(g), "min_ts_ns": str(g.min_ts_ns), "max_ts_ns": str(g.max_ts_ns)}
                           for g in self.groups],
                "pending_jobs": self.pending_jobs, "needs_archive_target": self.needs_archive_target}


def _hold_user_ids(store: Store, holds: list[LegalHold]) -> dict[str, list[str]]:
    from .gdpr_keys import SubjectKeys

    users = [h.user_id for h in holds if h.user_id]
    return SubjectKeys(store).pseudonyms(users) if users else {}


def _prev_archived_sql(store: Store) -> str:
    steps, rows = store.qualified("retention_job_steps"), store.qualified("retention_job_rows")
    return (f"Uid IN (SELECT Uid FROM {rows} WHERE archive = 1 AND (job_id, step_key) IN ("
            f"SELECT job_id, step_key FROM {steps} GROUP BY job_id, step_key "
            "HAVING argMax(state, version) IN ('verified', 'deleted')))")


def _eligibility(store: Store, policy_set: PolicySet, holds: list[LegalHold], cutoff_ns: int,
                 organizations: list[str] | None) -> tuple[str, str, dict[str, Any]]:
    """``(with_clause, where, params)``: WITH defines gov, arch, held, prev, lock_days, codec."""
    comp = compile_policy_set(policy_set)
    held, hparams = holds_sql(holds, _hold_user_ids(store, holds))
    params: dict[str, Any] = {**comp.params, **hparams, "cutoff_ns": int(cutoff_ns)}
    with_clause = (f"WITH {comp.gov} AS gov, {comp.archive} AS arch, {held} AS held, "
                   f"toUInt8({_prev_archived_sql(store)}) AS prev, {comp.lock_days} AS lock_days, "
                   f"{comp.compression} AS codec")
    where = [f"tupleElement(gov, 1) >= 0",
             f"toInt128(toUnixTimestamp64Nano(Timestamp)) + toInt128(tupleElement(gov, 1)) * {NS_PER_DAY}"
             " <= {cutoff_ns:Int64}"]
    if comp.empty:
        where = ["0"]
    if organizations is not None:
        params["scope_orgs"] = list(organizations)
        where.append("OrgId IN {scope_orgs:Array(String)}")
    return with_clause, " AND ".join(where), params


def plan_retention(store: Store, policy_set: PolicySet, *, cutoff_ns: int | None = None,
                   organizations: list[str] | None = None, archive: ArchiveTarget | None = None) -> RetentionPlan:
    """What a run at ``cutoff_ns`` (default now) would archive, delete and keep, grouped (a dry run).

    Args:
        organizations: limit to these organizations (None: all).
        archive: the archive target (only to flag a plan that needs one it lacks).
    """
    cutoff_ns = time.time_ns() if cutoff_ns is None else int(cutoff_ns)
    holds = active_holds(store)
    with_clause, where, params = _eligibility(store, policy_set, holds, cutoff_ns, organizations)
    rows = store.query(
        f"{with_clause} SELECT tupleElement(gov, 4) AS policy, toYYYYMM(Timestamp, 'UTC') AS part, OrgId, "
        "toString(toDate(Timestamp, 'UTC')) AS day, "
        "multiIf(held, 'held', arch AND NOT prev, 'archive_delete', arch AND prev, 'delete_archived', 'delete') "
        "AS action, count(), min(toUnixTimestamp64Nano(Timestamp)), max(toUnixTimestamp64Nano(Timestamp)) "
        f"FROM {store.table} WHERE {where} GROUP BY policy, part, OrgId, day, action "
        "ORDER BY part, OrgId, day, policy, action", params)
    groups = [PlanGroup(r[0], int(r[1]), r[2], r[3], r[4], int(r[5]), int(r[6]), int(r[7])) for r in rows]
    plan = RetentionPlan(cutoff_ns, groups, [j for j in list_jobs(store) if j["state"] in ("planning", "running")])
    plan.needs_archive_target = archive is None and any(g.action == "archive_delete" for g in groups)
    return plan


# --- job state --------------------------------------------------------------------------


def list_jobs(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """Retention jobs, newest first: job_id, created_at_ns, cutoff_ns, state, organizations, summary."""
    cols = ", ".join(f"argMax({c}, version)" for c in _JOB_COLUMNS[1:-1])
    rows = store.query(f"SELECT job_id, {cols} FROM {store.qualified('retention_jobs')} GROUP BY job_id "
                       "ORDER BY 2 DESC LIMIT {limit:UInt32}", {"limit": limit})
    out = []
    for r in rows:
        job = dict(zip(_JOB_COLUMNS[:-1], r))
        job["organizations"] = None if job.pop("all_orgs") else list(job["organizations"])
        job["summary"] = json.loads(job["summary"]) if job["summary"] else {}
        out.append(job)
    return out


def _put_job(store: Store, job: dict[str, Any], **changes: Any) -> dict[str, Any]:
    job = {**job, **changes}
    orgs = job["organizations"]
    store.client.insert("retention_jobs", [[
        job["job_id"], job["created_at_ns"], job["cutoff_ns"], job["state"], orgs or [], int(orgs is None),
        job["created_by"], json.dumps(job.get("summary") or {}), time.time_ns()]],
        column_names=_JOB_COLUMNS, database=store.database)
    return job


def _steps(store: Store, job_id: str) -> list[dict[str, Any]]:
    cols = ", ".join(f"argMax({c}, version)" for c in _STEP_COLUMNS[2:-1])
    rows = store.query(f"SELECT job_id, step_key, {cols} FROM {store.qualified('retention_job_steps')} "
                       "WHERE job_id = {j:String} GROUP BY job_id, step_key ORDER BY step_key", {"j": job_id})
    out = []
    for r in rows:
        step = dict(zip(_STEP_COLUMNS[:-1], r))
        step["day"] = str(step["day"])
        step["policies"] = json.loads(step["policies"])
        out.append(step)
    return out


def _put_step(store: Store, step: dict[str, Any], **changes: Any) -> dict[str, Any]:
    import datetime as _dt

    step = {**step, **changes}
    row = [step[c] for c in _STEP_COLUMNS[:-1]]
    row[_STEP_COLUMNS.index("day")] = _dt.date.fromisoformat(step["day"])
    row[_STEP_COLUMNS.index("policies")] = json.dumps(step["policies"], sort_keys=True)
    store.client.insert("retention_job_steps", [[*row, time.time_ns()]], column_names=_STEP_COLUMNS,
                        database=store.database)
    return step


def _pinned(store: Store, job_id: str, step_key: str) -> tuple[str, dict[str, Any]]:
    return (f"SELECT Uid FROM {store.qualified('retention_job_rows')} "
            "WHERE job_id = {pin_job:String} AND step_key = {pin_step:String}",
            {"pin_job": job_id, "pin_step": step_key})


# --- apply ---------------------------------------------------------------------------------


@dataclass
class ApplyReport:
    """Outcome of :func:`apply_retention`.

    Attributes:
        dry_run: nothing was changed (only ``plan`` is meaningful).
        plan: the plan shown before the run.
        jobs: ids of the jobs run (resumed and new).
        resumed: ids of the jobs resumed.
        archived: rows written to verified archive objects.
        deleted: rows deleted from the store.
        held: pinned rows a hold placed during the run kept.
        objects: keys of the archive objects written or adopted.
    """

    dry_run: bool
    plan: RetentionPlan
    jobs: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    archived: int = 0
    deleted: int = 0
    held: int = 0
    objects: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the API's ``RetentionApplyPublic``)."""
        return {"dry_run": self.dry_run, "plan": self.plan.to_dict(), "jobs": self.jobs, "resumed": self.resumed,
                "archived": self.archived, "deleted": self.deleted, "held": self.held, "objects": self.objects}


def _run_lock(store: Store) -> threading.Lock:
    with _run_locks_guard:
        return _run_locks.setdefault(store.database, threading.Lock())


def apply_retention(runtime: RetentionRuntime, *, dry_run: bool = False, organizations: list[str] | None = None,
                    cutoff_ns: int | None = None, fault: Callable[[str, str], None] | None = None,
                    progress: Callable[[int, int, str], None] | None = None) -> ApplyReport:
    """Run retention: resume unfinished jobs, then plan and run a new one (module docstring).

    Args:
        runtime: store, settings, archive target, ingest.
        dry_run: only plan.
        organizations: limit to these organizations (None: all).
        cutoff_ns: "now" for retention ends (default the clock), Unix ns UTC.
        fault: ``fault(point, step_key)`` called at each of :data:`CRASH_POINTS` (tests).
        progress: ``progress(rows_done, rows_total, description)`` after each step.

    Raises:
        ArchiveError: a policy wants archiving and no archive target is set (before
            anything happens), or an object failed verification (that step's rows stay).
        RetentionBusy: another run is in progress in this process.
        StoreError: the store failed.
    """
    store = runtime.store
    policy_set = runtime.policy_set()
    plan = plan_retention(store, policy_set, cutoff_ns=cutoff_ns, organizations=organizations,
                          archive=runtime.archive)
    report = ApplyReport(dry_run, plan)
    if dry_run:
        return report
    if plan.needs_archive_target:
        raise ArchiveError("a retention policy archives before deleting, but no archive is configured "
                           "(set GITAUDIT_S3_BUCKET)")
    lock = _run_lock(store)
    if not lock.acquire(blocking=False):
        raise RetentionBusy("a retention run is already in progress")
    try:
        for job in reversed(list_jobs(store, limit=1000)):
            if job["state"] not in ("planning", "running") or not _in_scope(job["organizations"], organizations):
                continue
            if job["state"] == "planning":
                _discard(store, job)
                continue
            report.resumed.append(job["job_id"])
            _run_job(runtime, policy_set, job, report, fault, progress)
        job = None
        if plan.totals()["delete"]:  # no job row for a run with nothing to do (the scheduler runs often)
            job = _plan_job(runtime, policy_set, plan.cutoff_ns, organizations, fault)
        if job is not None:
            _run_job(runtime, policy_set, job, report, fault, progress)
    finally:
        lock.release()
    return report


def _in_scope(job_orgs: list[str] | None, orgs: list[str] | None) -> bool:
    if orgs is None:
        return True
    return job_orgs is not None and set(job_orgs) <= set(orgs)


def _discard(store: Store, job: dict[str, Any]) -> None:
    for table in ("retention_job_rows", "retention_job_steps"):
        store.command(f"ALTER TABLE {store.qualified(table)} DELETE WHERE job_id = {{j:String}} "
                      "SETTINGS mutations_sync = 2", {"j": job["job_id"]})
    _put_job(store, job, state="abandoned")


def _plan_job(runtime: RetentionRuntime, policy_set: PolicySet, cutoff_ns: int, organizations: list[str] | None,
              fault: Callable[[str, str], None] | None) -> dict[str, Any] | None:
    store = runtime.store
    now = time.time_ns()
    job = _put_job(store, {"job_id": uuid7(now), "created_at_ns": now, "cutoff_ns": cutoff_ns, "state": "planning",
                           "organizations": organizations, "created_by": runtime.actor, "summary": {}})
    with_clause, where, params = _eligibility(store, policy_set, active_holds(store), cutoff_ns, organizations)
    params.update({"job": job["job_id"], "key_prefix": runtime.archive.prefix if runtime.archive else ""})
    day = "toDate(Timestamp, 'UTC')"
    key = (f"if(arch AND NOT prev, concat({{key_prefix:String}}, 'org=', {ORG_KEY_PART_SQL}, '/day=', toString({day}), "
           f"'/', {{job:String}}, '.parquet'), concat('delete/org=', {ORG_KEY_PART_SQL}, '/day=', toString({day})))")
    store.command(
        f"INSERT INTO {store.qualified('retention_job_rows')} "
        "(job_id, step_key, Uid, OrgId, day, ts_ns, policy, archive, lock_days, compression) "
        f"{with_clause} SELECT {{job:String}}, {key}, Uid, OrgId, {day}, toUnixTimestamp64Nano(Timestamp), "
        "tupleElement(gov, 4), toUInt8(arch AND NOT prev), lock_days, codec "
        f"FROM {store.table} WHERE {where} AND NOT held LIMIT 1 BY Uid", params)
    _fault(fault, "after_pin", "")
    rows_table = store.qualified("retention_job_rows")
    groups = store.query(
        f"SELECT step_key, any(OrgId), toString(any(day)), count(), min(ts_ns), max(ts_ns), max(archive), "
        f"max(lock_days), groupUniqArray(compression) FROM {rows_table} WHERE job_id = {{j:String}} "
        "GROUP BY step_key ORDER BY step_key", {"j": job["job_id"]})
    if not groups:
        _put_job(store, job, state="done", summary={"archived": 0, "deleted": 0, "held": 0})
        return None
    per_policy: dict[str, dict[str, int]] = {}
    for step_key, policy, n in store.query(
            f"SELECT step_key, policy, count() FROM {rows_table} WHERE job_id = {{j:String}} "
            "GROUP BY step_key, policy", {"j": job["job_id"]}):
        per_policy.setdefault(step_key, {})[policy] = int(n)
    for step_key, org, day_s, n, lo, hi, archive, lock_days, codecs in groups:
        _put_step(store, {
            "job_id": job["job_id"], "step_key": step_key, "kind": "archive" if archive else "delete",
            "organization": org, "day": day_s, "row_count": int(n), "min_ts_ns": int(lo), "max_ts_ns": int(hi),
            "policies": per_policy.get(step_key, {}), "compression": codecs[0] if len(codecs) == 1 else "zstd",
            "lock_days": int(lock_days), "state": "planned", "sha256": "", "bytes": 0, "deleted_count": 0,
            "held_count": 0, "manifest_key": ""})
    job = _put_job(store, job, state="running")
    _fault(fault, "after_plan", "")
    return job


def _fault(fault: Callable[[str, str], None] | None, point: str, step_key: str) -> None:
    if fault is not None:
        fault(point, step_key)


def _run_job(runtime: RetentionRuntime, policy_set: PolicySet, job: dict[str, Any], report: ApplyReport,
             fault: Callable[[str, str], None] | None, progress: Callable[[int, int, str], None] | None) -> None:
    store = runtime.store
    report.jobs.append(job["job_id"])
    steps = _steps(store, job["job_id"])
    total = sum(s["row_count"] for s in steps)
    done = 0
    context = {"policy_set": policy_set, "schema_version": _store_schema_version(store)}
    for step in steps:
        if step["state"] != "deleted":
            step = _run_step(runtime, context, job, step, fault)
        if step["kind"] == "archive":
            report.objects.append(step["step_key"])
        done += step["row_count"]
        if progress:
            progress(done, total, f"{step['organization'] or '(no org)'} {step['day']}")
    summary = _job_summary(store, job["job_id"])
    report.archived += summary["archived"]
    report.deleted += summary["deleted"]
    report.held += summary["held"]
    by_org_policy = summary.pop("by_org_policy")
    summary["by_org_policy"] = [{"organization": o, "policy": p, **c} for (o, p), c in sorted(by_org_policy.items())]
    _put_job(store, job, state="done", summary=summary)
    for (org, policy), counts in sorted(by_org_policy.items()):
        runtime.record(
            str(sc.SecurityEventType.RETENTION_RUN),
            {sc.AUDIT_ORGANIZATION_ID: org or None, sc.AUDIT_RETENTION_POLICY: policy,
             sc.AUDIT_RETENTION_JOB_ID: job["job_id"], sc.AUDIT_RETENTION_ARCHIVED_COUNT: counts["archived"],
             sc.AUDIT_RETENTION_DELETED_COUNT: counts["deleted"], sc.AUDIT_RETENTION_HELD_COUNT: counts["held"],
             sc.AUDIT_ARCHIVE_OBJECT_COUNT: counts["objects"], sc.USER_ID: runtime.actor},
            f"retention run {job['job_id']}: policy {policy}: {counts['archived']} archived, "
            f"{counts['deleted']} deleted, {counts['held']} held")


def _job_summary(store: Store, job_id: str) -> dict[str, Any]:
    rows_table = store.qualified("retention_job_rows")
    rows = store.query(
        f"SELECT OrgId, policy, countIf(archive = 1), count(), "
        f"countIf(Uid IN (SELECT Uid FROM {store.table} WHERE Uid IN "
        f"(SELECT Uid FROM {rows_table} WHERE job_id = {{j:String}}))), uniqExactIf(step_key, archive = 1) "
        f"FROM {rows_table} WHERE job_id = {{j:String}} GROUP BY OrgId, policy", {"j": job_id})
    by: dict[tuple[str, str], dict[str, int]] = {}
    for org, policy, archived, pinned, remaining, objects in rows:
        by[(org, policy)] = {"archived": int(archived), "deleted": int(pinned) - int(remaining),
                             "held": int(remaining), "objects": int(objects)}
    return {"archived": sum(c["archived"] for c in by.values()), "deleted": sum(c["deleted"] for c in by.values()),
            "held": sum(c["held"] for c in by.values()), "by_org_policy": by}


def _store_schema_version(store: Store) -> int:
    from .store.migrate import applied_versions

    return max(applied_versions(store), default=0)


def _run_step(runtime: RetentionRuntime, context: dict[str, Any], job: dict[str, Any], step: dict[str, Any],
              fault: Callable[[str, str], None] | None) -> dict[str, Any]:
    store = runtime.store
    key = step["step_key"]
    pinned_sql, pinned_params = _pinned(store, job["job_id"], key)
    if step["kind"] == "archive" and step["state"] in ("planned", "failed"):
        # a failed step (the object did not verify) is exported and uploaded again
        step = _upload(runtime, context, job, step, pinned_sql, pinned_params, fault,
                       replace=step["state"] == "failed")
    if step["kind"] == "archive" and step["state"] == "uploaded":
        result = verify_object(store, runtime.archive, key, expected_sha256=step["sha256"],
                               expected_rows=step["row_count"], pinned_sql=pinned_sql, pinned_params=pinned_params)
        if not result.ok:
            _put_step(store, step, state="failed")
            raise ArchiveError(f"archive object {key} failed verification ({result.problem}); "
                               "its events stay in the store")
        _fault(fault, "after_verify", key)
        step = _put_step(store, step, state="verified")
        _fault(fault, "after_mark_verified", key)
    if step["state"] in ("planned", "verified") and (step["kind"] == "delete" or step["state"] == "verified"):
        holds = active_holds(store)
        held, hparams = holds_sql(holds, _hold_user_ids(store, holds))
        store.command(f"ALTER TABLE {store.table} DELETE WHERE Uid IN ({pinned_sql}) AND NOT {held} "
                      "SETTINGS mutations_sync = 2", {**pinned_params, **hparams})
        _fault(fault, "after_delete", key)
        remaining = int(store.query(f"SELECT count() FROM {store.table} WHERE Uid IN ({pinned_sql})",
                                    pinned_params)[0][0])
        step = _put_step(store, step, state="deleted", deleted_count=step["row_count"] - remaining,
                         held_count=remaining)
        _fault(fault, "after_mark_deleted", key)
    return step


def _upload(runtime: RetentionRuntime, context: dict[str, Any], job: dict[str, Any], step: dict[str, Any],
            pinned_sql: str, pinned_params: dict[str, Any], fault: Callable[[str, str], None] | None,
            replace: bool = False) -> dict[str, Any]:
    store, target, key = runtime.store, runtime.archive, step["step_key"]
    if target is None:
        raise ArchiveError("this retention job archives, but no archive is configured (set GITAUDIT_S3_BUCKET)")
    data = None if replace else target.get(key)
    lock: dict[str, Any] = {}
    if data is None:
        present = int(store.query(f"SELECT uniqExact(Uid) FROM {store.table} WHERE Uid IN ({pinned_sql})",
                                  pinned_params)[0][0])
        if present != step["row_count"]:
            raise ArchiveError(f"{step['row_count'] - present} event(s) pinned for {key} are no longer in the "
                               "store; nothing was uploaded")
        data = export_parquet(store, f"Uid IN ({pinned_sql})", pinned_params, step["compression"])
        lock = target.put(key, data, "application/vnd.apache.parquet", step["lock_days"])
        _fault(fault, "after_upload", key)
    elif step["lock_days"] > 0 and target.object_lock_enabled():
        head = target.client.head_object(Bucket=target.bucket, Key=key)
        if head.get("ObjectLockMode"):
            lock = {"mode": head["ObjectLockMode"],
                    "retain_until": head["ObjectLockRetainUntilDate"].strftime("%Y-%m-%dT%H:%M:%SZ")}
    policy_set = context["policy_set"]
    details = []
    for name in sorted(step["policies"]):
        p = policy_set.get(name)
        details.append({"name": name, "rows": step["policies"][name],
                        "retention_days": p.retention_days if p else None,
                        "archive_retention_days": p.archive_retention_days if p else None})
    manifest = build_manifest(
        target=target, key=key, data=data, row_count=step["row_count"], min_ts_ns=step["min_ts_ns"],
        max_ts_ns=step["max_ts_ns"], organization=step["organization"], day=step["day"],
        policies=step["policies"], policy_details=details, compression=step["compression"], job_id=job["job_id"],
        store_schema_version=context["schema_version"], lock=lock)
    mkey = manifest_key(key)
    existing = target.get(mkey)
    if existing is None or json.loads(existing).get("sha256") != manifest["sha256"]:
        target.put(mkey, json.dumps(manifest, indent=2, sort_keys=True).encode(), "application/json",
                   step["lock_days"])
    _fault(fault, "after_manifest", key)
    step = _put_step(store, step, state="uploaded", sha256=manifest["sha256"], bytes=len(data), manifest_key=mkey)
    _fault(fault, "after_mark_uploaded", key)
    return step


def deleted_by_retention(store: Store, uids: list[str]) -> dict[str, dict[str, str]]:
    """Which of ``uids`` retention removed from the store on purpose, and where their archive copy is.

    For ``gitaudit verify``: a sealed event that is gone because its retention
    ended is not tampering. Returns uid -> ``{"job_id", "object_key"}``
    (``object_key`` is ``''`` when the policy deleted without archiving) for
    uids pinned by a retention step that reached ``deleted`` and that are no
    longer stored.
    """
    if not uids:
        return {}
    rows_table, steps_table = store.qualified("retention_job_rows"), store.qualified("retention_job_steps")
    rows = store.query(
        f"SELECT Uid, job_id, step_key, kind FROM {rows_table} AS r "
        f"INNER JOIN (SELECT job_id, step_key, argMax(kind, version) AS kind FROM {steps_table} "
        "GROUP BY job_id, step_key HAVING argMax(state, version) = 'deleted') AS s USING (job_id, step_key) "
        f"WHERE Uid IN {{uids:Array(String)}} AND Uid NOT IN (SELECT Uid FROM {store.table} "
        "WHERE Uid IN {uids:Array(String)})", {"uids": list(uids)})
    out: dict[str, dict[str, str]] = {}
    for uid, job_id, step_key, kind in rows:
        if uid not in out or kind == "archive":
            out[uid] = {"job_id": job_id, "object_key": step_key if kind == "archive" else ""}
    return out
