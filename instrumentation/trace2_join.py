"""Join git trace2 events into one audit record per top-level git command.

Each git process writes its own trace2 stream (https://git-scm.com/docs/api-trace2);
a process started by a traced git process has the session id
``<parent-sid>/<own-sid>``. :class:`Trace2Joiner` keeps one state per session
id and, when a *top-level* process finishes, returns one :class:`AuditRecord`
describing the whole command:

* a process is top-level when its sid has no parent part, or the parent part is
  not a git process the joiner knows -- e.g. ``<32-hex OTel trace id>/<sid>``
  when gitaudit launched git with ``GIT_TRACE2_PARENT_SID``; the record then
  carries that trace id as its trace context;
* child processes (``parent/child``) are folded into the top-level record:
  count, names and summed wall time of the children come from the parent's own
  ``child_start`` / ``child_exit`` events (ordered in one stream, so immune to
  the order in which the streams of different processes are read); the
  children's own streams only mark them as members;
* a finished process whose parent part looks like a git sid but is unknown
  waits ``orphan_grace_s`` for the parent's stream to show up before being
  treated as top-level (streams of different processes race in the reader);
* records are produced at ``atexit`` (or ``signal``; or ``exit`` followed by
  the end of the connection); a process whose connection ends without an exit,
  or that runs longer than ``flush_timeout_s``, yields a failure record with
  ``error.type`` = ``git.trace2.incomplete``.

The joiner does no I/O and reads no clock: callers pass ``now`` (monotonic
seconds) and ``wall_ns`` (Unix ns UTC), so it is deterministic under test.
"""

from __future__ import annotations

import os
import pwd
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import semconv as sc
from .git_runner import event_name_for, sanitize_argv, sanitize_output, subcommand_index
from .git_urls import strip_credentials_in_text
from .trace2_events import Trace2Event, is_trace_id, split_sid, trace_id_of_sid

#: ``error.type`` of a command whose end was never seen.
INCOMPLETE_ERROR_TYPE = "git.trace2.incomplete"

_MAX_ERRORS = 8
_MAX_CHILD_NAMES = 32
_MAX_REGIONS = 10
_FINISHED_MEMORY = 8192


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Credentials of the process at the other end of the socket (``SO_PEERCRED``)."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True)
class AuditRecord:
    """One audit event to emit for a top-level git command.

    Attributes:
        event_name: the EventName (``git.clone``, ``git.command``, ...).
        attributes: semconv-keyed attributes (``git.command``, ``git.argv``, ...).
        body: a one-line human-readable sentence.
        outcome: ``success`` or ``failure``.
        duration_ms: wall time of the command in ms (``None`` if unknown).
        error_type: ``git.exit_<code>``, ``git.signal_<n>`` or ``git.trace2.incomplete``.
        timestamp_ns: the command's start, Unix ns UTC.
        trace_id: the external OTel trace id (32 hex) the command belongs to, or ``None``.
    """

    event_name: str
    attributes: dict[str, Any]
    body: str
    outcome: str
    duration_ms: float | None
    error_type: str | None
    timestamp_ns: int
    trace_id: str | None = None


@dataclass
class _Proc:
    sid: str
    parent: str
    first_seen: float
    first_wall_ns: int
    peer: PeerInfo | None = None
    argv: list[str] | None = None
    start_ns: int | None = None
    last_ns: int | None = None
    version: str | None = None
    cmd_name: str | None = None
    cmd_mode: str | None = None
    alias: str | None = None
    alias_argv: list[str] = field(default_factory=list)
    worktree: str | None = None
    exit_code: int | None = None
    t_exit_s: float | None = None
    signo: int | None = None
    errors: list[str] = field(default_factory=list)
    child_count: int = 0
    child_names: list[str] = field(default_factory=list)
    child_duration_s: float = 0.0
    regions: dict[str, float] = field(default_factory=dict)
    finished_at: float | None = None
    incomplete: str | None = None


def _child_name(ev: Trace2Event) -> str:
    argv = ev.get("argv") or []
    if ev.get("child_class") == "hook" and ev.get("hook_name"):
        return f"hook:{ev.get('hook_name')}"
    if not argv:
        return "?"
    first = str(argv[0])
    if ev.get("use_shell"):
        first = first.split(None, 1)[0] if first.strip() else first
    name = os.path.basename(first)
    if name == "git" and len(argv) > 1:
        name = f"git {argv[1]}"
    return strip_credentials_in_text(name)


class Trace2Joiner:
    """Fold trace2 events of git processes into per-command :class:`AuditRecord` s.

    Args:
        flush_timeout_s: a top-level process still running this many seconds
            after its first event is reported as incomplete (default 1 h).
        orphan_grace_s: how long a finished process whose parent sid is unknown
            waits for its parent's stream before being treated as top-level.

    Not thread-safe: feed it from one thread.
    """

    def __init__(self, *, flush_timeout_s: float = 3600.0, orphan_grace_s: float = 0.5) -> None:
        if flush_timeout_s <= 0:
            raise ValueError("flush_timeout_s must be > 0")
        self.flush_timeout_s = float(flush_timeout_s)
        self.orphan_grace_s = float(orphan_grace_s)
        self._procs: dict[str, _Proc] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._user_names: dict[int, str | None] = {}

    # -- input -----------------------------------------------------------------
    @property
    def active(self) -> int:
        """Number of processes currently tracked (all depths)."""
        return len(self._procs)

    def feed(
        self, ev: Trace2Event, *, now: float, wall_ns: int, peer: PeerInfo | None = None
    ) -> list[AuditRecord]:
        """Take one event; return the records that became complete (often none).

        Args:
            ev: the parsed event.
            now: monotonic clock, seconds.
            wall_ns: receipt time, Unix ns UTC (used when the event has no ``time``).
            peer: credentials of the sending process, if known.
        """
        sid = ev.sid
        if sid in self._finished:
            return []
        proc = self._procs.get(sid)
        if proc is None:
            parent, _ = split_sid(sid)
            if parent and parent in self._finished:
                self._remember_finished(sid)  # late stream of a child already folded
                return []
            proc = self._procs[sid] = _Proc(sid, parent, now, ev.time_ns or wall_ns)
        if peer is not None and proc.peer is None:
            proc.peer = peer
        if ev.time_ns is not None:
            proc.last_ns = ev.time_ns
        finished = self._apply(proc, ev)
        if finished:
            proc.finished_at = now
            return self._collect(now)
        return []

    def disconnected(self, sid: str, *, now: float) -> list[AuditRecord]:
        """The connection that carried ``sid`` ended; return records now complete.

        A process that sent ``exit`` is complete; one that sent neither ``exit``
        nor ``atexit`` is marked incomplete (killed, or exec'd a non-git program).
        """
        proc = self._procs.get(sid)
        if proc is None or proc.finished_at is not None:
            return []
        if proc.exit_code is None:
            proc.incomplete = "the git process closed its trace2 stream before its exit event"
        proc.finished_at = now
        return self._collect(now)

    def flush_due(self, *, now: float) -> list[AuditRecord]:
        """Return records due by time: orphans past their grace, processes past the timeout."""
        for proc in self._procs.values():
            if proc.finished_at is None and now - proc.first_seen >= self.flush_timeout_s:
                proc.incomplete = f"no exit event within {self.flush_timeout_s:g} s"
                proc.finished_at = now
        return self._collect(now)

    def flush_all(self, *, now: float, reason: str = "the trace2 agent stopped") -> list[AuditRecord]:
        """Return records for everything still tracked (running ones as incomplete)."""
        for proc in self._procs.values():
            if proc.finished_at is None:
                proc.incomplete = f"{reason} before the git process exited"
                proc.finished_at = now
        return self._collect(now, force=True)

    # -- event kinds -------------------------------------------------------------
    def _apply(self, p: _Proc, ev: Trace2Event) -> bool:
        kind = ev.kind
        if kind == "start":
            argv = ev.get("argv")
            if isinstance(argv, list):
                p.argv = [str(a) for a in argv]
            if ev.time_ns is not None:
                p.start_ns = ev.time_ns - int((ev.t_abs_s or 0.0) * 1e9)
        elif kind == "version":
            p.version = str(ev.get("exe", "")) or None
        elif kind == "cmd_name":
            p.cmd_name = str(ev.get("name", "")) or None
        elif kind == "cmd_mode":
            p.cmd_mode = str(ev.get("name", "")) or None
        elif kind == "alias":
            p.alias = str(ev.get("alias", "")) or None
            expansion = ev.get("argv")
            if isinstance(expansion, list):
                p.alias_argv = [str(a) for a in expansion]
        elif kind == "def_repo":
            wt = ev.get("worktree")
            if isinstance(wt, str) and (p.worktree is None or ev.get("repo") == 1):
                p.worktree = wt
        elif kind == "error":
            if len(p.errors) < _MAX_ERRORS and ev.get("msg"):
                p.errors.append(str(ev.get("msg")))
        elif kind == "child_start":
            p.child_count += 1
            if len(p.child_names) < _MAX_CHILD_NAMES:
                p.child_names.append(_child_name(ev))
        elif kind == "child_exit":
            t_rel = ev.get("t_rel")
            if isinstance(t_rel, (int, float)):
                p.child_duration_s += float(t_rel)
        elif kind == "exec":
            if len(p.child_names) < _MAX_CHILD_NAMES:
                argv = ev.get("argv") or [ev.get("exe") or "?"]
                p.child_names.append("exec:" + strip_credentials_in_text(os.path.basename(str(argv[0]))))
        elif kind == "region_leave":
            t_rel = ev.get("t_rel")
            if ev.get("nesting") == 1 and isinstance(t_rel, (int, float)):
                key = f"{ev.get('category', '')}:{ev.get('label', '')}"
                p.regions[key] = p.regions.get(key, 0.0) + float(t_rel)
        elif kind in ("exit", "atexit"):
            code = ev.get("code")
            if isinstance(code, int):
                p.exit_code = code
            if ev.t_abs_s is not None:
                p.t_exit_s = ev.t_abs_s
            return kind == "atexit"
        elif kind == "signal":
            signo = ev.get("signo")
            p.signo = signo if isinstance(signo, int) else 0
            p.exit_code = 128 + p.signo
            if ev.t_abs_s is not None:
                p.t_exit_s = ev.t_abs_s
            return True
        return False

    # -- completion ----------------------------------------------------------------
    def _remember_finished(self, sid: str) -> None:
        self._finished[sid] = None
        self._finished.move_to_end(sid)
        while len(self._finished) > _FINISHED_MEMORY:
            self._finished.popitem(last=False)

    def _collect(self, now: float, *, force: bool = False) -> list[AuditRecord]:
        out: list[AuditRecord] = []
        for proc in list(self._procs.values()):
            if proc.sid not in self._procs or proc.finished_at is None:
                continue
            parent = proc.parent
            if parent and parent in self._procs:
                continue  # folded into a running parent
            if parent and parent in self._finished:
                self._drop_tree(proc.sid)
                continue
            if (
                parent
                and not force
                and not is_trace_id(parent.split("/", 1)[0])
                and now < proc.finished_at + self.orphan_grace_s
            ):
                continue  # the parent's stream may still be on its way
            out.append(self._record(proc, now))
            self._drop_tree(proc.sid)
        return out

    def _drop_tree(self, sid: str) -> None:
        prefix = sid + "/"
        for other in [s for s in self._procs if s == sid or s.startswith(prefix)]:
            del self._procs[other]
            self._remember_finished(other)

    def _user_name(self, uid: int) -> str | None:
        if uid not in self._user_names:
            try:
                self._user_names[uid] = pwd.getpwuid(uid).pw_name
            except (KeyError, OSError):
                self._user_names[uid] = None
        return self._user_names[uid]

    def _record(self, p: _Proc, now: float) -> AuditRecord:
        argv = sanitize_argv(p.argv) if p.argv else None
        args = p.argv[1:] if p.argv else []
        command = p.cmd_name
        if not command or command.startswith("_"):
            idx = subcommand_index(args)
            command = args[idx] if idx is not None else (command or "unknown")
        # name the event from the command git actually ran (aliases resolved),
        # with the options that followed it on the command line
        idx = subcommand_index(args)
        tail = list(args[idx + 1:]) if idx is not None else []
        if p.alias_argv:  # "git bd x" with alias bd = "branch -D" -> branch -D x
            tail = p.alias_argv[1:] + tail
        event_name = str(event_name_for([command, *tail]))

        duration_ms: float | None = None
        if p.t_exit_s is not None:
            duration_ms = p.t_exit_s * 1000.0
        elif p.start_ns is not None and p.last_ns is not None:
            duration_ms = (p.last_ns - p.start_ns) / 1e6

        attrs: dict[str, Any] = {
            sc.GIT_COMMAND: command,
            sc.GIT_ARGV: argv,
            sc.GIT_REPOSITORY_PATH: p.worktree,
            sc.GIT_EXIT_CODE: p.exit_code,
            sc.GIT_TRACE2_SID: p.sid,
            sc.GIT_ALIAS: p.alias,
            sc.GIT_COMMAND_MODE: p.cmd_mode,
            sc.GIT_VERSION: p.version,
            sc.GIT_CHILD_PROCESS_COUNT: p.child_count,
        }
        if p.child_count:
            attrs[sc.GIT_CHILD_PROCESS_NAMES] = list(p.child_names)
            attrs[sc.GIT_CHILD_PROCESS_DURATION_MS] = round(p.child_duration_s * 1000.0, 3)
        if p.regions:
            top = sorted(p.regions.items(), key=lambda kv: kv[1], reverse=True)[:_MAX_REGIONS]
            attrs[sc.GIT_TRACE2_REGIONS] = [f"{k}={v * 1000.0:.3f}ms" for k, v in top]
        if p.peer is not None:
            attrs[sc.PROCESS_PID] = p.peer.pid
            attrs[sc.USER_ID] = str(p.peer.uid)
            attrs[sc.USER_NAME] = self._user_name(p.peer.uid)

        outcome, error_type = sc.Outcome.SUCCESS, None
        if p.incomplete is not None:
            outcome, error_type = sc.Outcome.FAILURE, INCOMPLETE_ERROR_TYPE
            attrs[sc.AUDIT_ERROR_MESSAGE] = p.incomplete
        elif p.signo is not None:
            outcome, error_type = sc.Outcome.FAILURE, f"git.signal_{p.signo}"
            attrs[sc.AUDIT_ERROR_MESSAGE] = f"git was killed by signal {p.signo}"
        elif p.exit_code not in (None, 0):
            outcome, error_type = sc.Outcome.FAILURE, f"git.exit_{p.exit_code}"
            if p.errors:
                attrs[sc.AUDIT_ERROR_MESSAGE] = sanitize_output("\n".join(p.errors))

        shown = " ".join(argv) if argv else f"git {command}"
        if outcome == sc.Outcome.SUCCESS:
            body = f"{shown} exited 0"
        elif error_type == INCOMPLETE_ERROR_TYPE:
            body = f"{shown}: incomplete ({p.incomplete})"
        else:
            body = f"{shown} failed ({error_type})"
        if duration_ms is not None:
            body += f" in {duration_ms:.1f} ms"

        return AuditRecord(
            event_name=event_name,
            attributes={k: v for k, v in attrs.items() if v is not None},
            body=body,
            outcome=str(outcome),
            duration_ms=duration_ms,
            error_type=error_type,
            timestamp_ns=p.start_ns if p.start_ns is not None else p.first_wall_ns,
            trace_id=trace_id_of_sid(p.sid),
        )


def join_lines(
    lines: Sequence[bytes | str], *, flush_timeout_s: float = 3600.0
) -> list[AuditRecord]:
    """Join a recorded trace2 stream (e.g. a ``GIT_TRACE2_EVENT`` file) in one go.

    Unknown kinds and unparsable lines are skipped; processes still running at
    the end are returned as incomplete. For offline use and tests.
    """
    from .trace2_events import Trace2FormatError, parse_event_line

    joiner = Trace2Joiner(flush_timeout_s=flush_timeout_s, orphan_grace_s=0.0)
    out: list[AuditRecord] = []
    for line in lines:
        try:
            ev = parse_event_line(line)
        except Trace2FormatError:
            continue
        if ev is not None:
            out.extend(joiner.feed(ev, now=0.0, wall_ns=ev.time_ns or 0))
    out.extend(joiner.flush_all(now=0.0, reason="the recording ended"))
    return out
