"""The git trace2 agent: audit every git command on a machine, with no code change.

git writes its trace2 event stream (https://git-scm.com/docs/api-trace2,
"Event Format") to a Unix domain socket when its *global or system* config says
``trace2.eventTarget = af_unix:stream:<path>`` (``gitaudit trace2 install``
writes that). Every git process connects once and writes newline-delimited
JSON events. :class:`Trace2Agent` listens on that socket, joins each process's
events with :class:`~gitaudit.instrumentation.trace2_join.Trace2Joiner` and emits
one audit event per top-level git command through
:func:`~gitaudit.instrumentation.emit_event` (EventName ``git.clone``,
``git.push``, ..., ``git.command``; timestamp = the command's start).

Usage::

    from gitaudit.instrumentation import configure
    from gitaudit.instrumentation.trace2_agent import Trace2Agent

    configure(endpoint="http://127.0.0.1:4318", service_name="gitaudit-trace2")
    with Trace2Agent("/run/gitaudit/trace2.sock", socket_mode=0o666) as agent:
        print(agent.downtime.message)
        agent.wait()            # until agent.stop() from another thread

or from the shell: ``gitaudit trace2 listen --socket /run/gitaudit/trace2.sock``.

**When the agent is down git keeps working**: git silently drops its trace2
events when nobody listens on the socket (it neither blocks nor fails). So the
number of commands the agent missed is unknowable. Instead the agent records in
a state file (default ``$XDG_STATE_HOME/gitaudit/trace2-agent.json``, env
``GITAUDIT_TRACE2_STATE``) the time it last stopped (or, after a crash, its last
heartbeat) and on the next start reports "agent was down from X to Y" and emits
a ``security.event`` with ``security.event.type = audit.gap`` and the window
(``audit.gap.start_ns`` / ``audit.gap.end_ns``, Unix ns UTC), so the gap is on
the audit record.

Peer credentials (``SO_PEERCRED``) of each connecting git process give
``process.pid``, ``user.id`` (the uid) and ``user.name``.

Running the agent as a systemd service
--------------------------------------

Machine-wide (all users' git): a system service owning ``/run/gitaudit``, a
world-writable socket (any local user's git must connect; the agent trusts what
local processes write, as syslog does), and system-scope git config::

    # /etc/systemd/system/gitaudit-trace2.service
    [Unit]
    Description=gitaudit trace2 agent (audit events for every git command)
    After=network-online.target
    Wants=network-online.target

    [Service]
    Type=simple
    User=gitaudit
    RuntimeDirectory=gitaudit
    RuntimeDirectoryMode=0755
    StateDirectory=gitaudit
    Environment=GITAUDIT_ENDPOINT=http://127.0.0.1:4318
    Environment=GITAUDIT_TRACE2_STATE=/var/lib/gitaudit/trace2-agent.json
    ExecStart=/opt/gitaudit/.venv/bin/gitaudit trace2 listen \\
        --socket /run/gitaudit/trace2.sock --mode 0666
    Restart=always
    RestartSec=1
    KillSignal=SIGTERM
    TimeoutStopSec=15

    [Install]
    WantedBy=multi-user.target

then::

    sudo systemctl daemon-reload
    sudo systemctl enable --now gitaudit-trace2
    sudo /opt/gitaudit/.venv/bin/gitaudit trace2 install \\
        --socket /run/gitaudit/trace2.sock --system

One user only: the same unit under ``~/.config/systemd/user/`` without
``User=``, with ``--socket %t/gitaudit/trace2.sock`` (``%t`` = ``$XDG_RUNTIME_DIR``),
``systemctl --user enable --now gitaudit-trace2`` and ``gitaudit trace2 install
--socket $XDG_RUNTIME_DIR/gitaudit/trace2.sock`` (global scope, ``~/.gitconfig``).
``journalctl -u gitaudit-trace2`` shows the start line with the downtime window.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import stat
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from . import semconv as sc
from .events import emit_event
from .trace2_events import Trace2FormatError, parse_event_line
from .trace2_join import AuditRecord, PeerInfo, Trace2Joiner

_log = logging.getLogger("gitaudit.trace2")

#: Environment variable naming the agent's state file.
ENV_STATE_FILE = "GITAUDIT_TRACE2_STATE"
#: Longest AF_UNIX socket path on Linux (sun_path is 108 bytes including the NUL).
MAX_SOCKET_PATH_BYTES = 107
_READ_SIZE = 65536


def default_state_file() -> Path:
    """``$GITAUDIT_TRACE2_STATE``, else ``$XDG_STATE_HOME/gitaudit/trace2-agent.json``
    (``~/.local/state/...`` when ``XDG_STATE_HOME`` is unset)."""
    env = os.environ.get(ENV_STATE_FILE)
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "gitaudit" / "trace2-agent.json"


@dataclass(frozen=True)
class Downtime:
    """What the agent knows, at start, about the time it was not listening.

    Attributes:
        start_ns: when the previous run stopped (or last proved alive), Unix ns
            UTC; ``None`` when no previous run is recorded.
        end_ns: when this run started listening, Unix ns UTC.
        clean: the previous run recorded a clean stop (``False``: it crashed
            and ``start_ns`` is its last heartbeat).
        message: one sentence for the operator.
    """

    start_ns: int | None
    end_ns: int
    clean: bool
    message: str

    @property
    def duration_ms(self) -> float | None:
        """Length of the window in ms, ``None`` when unknown."""
        return None if self.start_ns is None else (self.end_ns - self.start_ns) / 1e6


def _fmt_utc(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac // 1000:06d}Z"


def read_downtime(state_file: Path, now_ns: int) -> Downtime:
    """Compute the downtime window from the previous run's state file.

    Args:
        state_file: the JSON state file (``stopped_ns``, ``heartbeat_ns``).
        now_ns: this run's start, Unix ns UTC.

    Returns:
        A :class:`Downtime`; an unreadable or absent file gives ``start_ns=None``.
    """
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return Downtime(None, now_ns, False,
                        "no previous run of the trace2 agent is recorded; "
                        "git commands run before now were not audited by it")
    stopped, beat = state.get("stopped_ns"), state.get("heartbeat_ns")
    clean = isinstance(stopped, int)
    start = stopped if clean else beat if isinstance(beat, int) else None
    if start is None:
        return Downtime(None, now_ns, False, "the trace2 agent's state file holds no stop time")
    how = "stopped" if clean else "stopped without a clean shutdown (last heartbeat)"
    secs = (now_ns - start) / 1e9
    return Downtime(
        start, now_ns, clean,
        f"trace2 agent was down from {_fmt_utc(start)} to {_fmt_utc(now_ns)} ({secs:.1f} s; {how}); "
        "git drops trace2 events silently when the socket is absent, so the number of "
        "git commands run in that window is unknowable: they were not audited",
    )


def _write_state(state_file: Path, state: dict[str, Any]) -> None:
    state_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_file.with_name(state_file.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, state_file)


@dataclass
class AgentStats:
    """Counters of a running agent (read them, do not write).

    Attributes:
        connections: connections accepted since start.
        open_connections: connections open now.
        rejected_connections: connections closed at once because
            ``max_connections`` were open (their git still succeeds).
        lines: event lines read.
        garbage_lines: lines that were not trace2 events (skipped).
        ignored_lines: trace2 lines of kinds the agent does not know.
        events_emitted: audit events emitted for git commands.
        incomplete: of those, commands whose end was never seen.
        emit_errors: emits that raised (swallowed and logged).
    """

    connections: int = 0
    open_connections: int = 0
    rejected_connections: int = 0
    lines: int = 0
    garbage_lines: int = 0
    ignored_lines: int = 0
    events_emitted: int = 0
    incomplete: int = 0
    emit_errors: int = 0


@dataclass
class _Conn:
    sock: socket.socket
    peer: PeerInfo | None
    buf: bytearray = field(default_factory=bytearray)
    discarding: bool = False
    sid: str | None = None


def _peer_of(sock: socket.socket) -> PeerInfo | None:
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    try:
        pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i")))
    except OSError:
        return None
    return PeerInfo(pid, uid, gid)


class Trace2Agent:
    """Listen for git trace2 streams on an AF_UNIX socket and emit audit events.

    Args:
        socket_path: filesystem path of the socket (at most 107 bytes); a stale
            socket file left by a dead agent is replaced.
        flush_timeout_s: a git command still running this long (seconds) after
            its first event is emitted as failure ``git.trace2.incomplete``.
        state_file: where start/stop times are kept (default:
            :func:`default_state_file`).
        socket_mode: permission bits of the socket (``0o666`` to let every
            local user's git connect; default ``0o600``, the owner only).
        max_connections: open connections at most; more are closed at once
            and counted in :attr:`AgentStats.rejected_connections`.
        max_line_bytes: longer lines are dropped and counted as garbage.
        orphan_grace_s: see :class:`~gitaudit.instrumentation.trace2_join.Trace2Joiner`.
        heartbeat_s: how often the state file records that the agent is alive.
        emit_gap_event: emit the ``security.event`` ``audit.gap`` at start.

    Raises (from :meth:`start`):
        ValueError: the path is too long for AF_UNIX.
        FileExistsError: the path exists and is not a socket, or another agent
            is listening on it.

    Use :meth:`start` / :meth:`stop` or ``with Trace2Agent(...) as agent``. The
    agent runs one background thread (a ``selectors`` loop); it never raises
    into git nor dies on bad input.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        flush_timeout_s: float = 3600.0,
        state_file: str | os.PathLike[str] | None = None,
        socket_mode: int = 0o600,
        max_connections: int = 1024,
        max_line_bytes: int = 1 << 20,
        orphan_grace_s: float = 0.5,
        heartbeat_s: float = 5.0,
        emit_gap_event: bool = True,
    ) -> None:
        self.socket_path = os.fspath(socket_path)
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH_BYTES:
            raise ValueError(
                f"AF_UNIX socket path is longer than {MAX_SOCKET_PATH_BYTES} bytes: {self.socket_path!r}"
            )
        self.state_file = Path(state_file) if state_file is not None else default_state_file()
        self.socket_mode = socket_mode
        self.max_connections = max_connections
        self.max_line_bytes = max_line_bytes
        self.heartbeat_s = heartbeat_s
        self.emit_gap_event = emit_gap_event
        self.stats = AgentStats()
        self.downtime: Downtime | None = None
        self._joiner = Trace2Joiner(flush_timeout_s=flush_timeout_s, orphan_grace_s=orphan_grace_s)
        self._sel: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._cond = threading.Condition()
        self._started_ns = 0

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> Trace2Agent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Downtime:
        """Bind the socket, report the downtime window, start the loop thread.

        Returns:
            The :class:`Downtime` since the previous run (also in :attr:`downtime`).
        """
        self._prepare_path()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.socket_path)
            os.chmod(self.socket_path, self.socket_mode)
            listener.listen(socket.SOMAXCONN)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(listener, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")

        self._started_ns = time.time_ns()
        self.downtime = read_downtime(self.state_file, self._started_ns)
        self._save_state(stopped=False)
        level = logging.WARNING if self.downtime.start_ns is not None else logging.INFO
        _log.log(level, "%s", self.downtime.message)
        if self.emit_gap_event and self.downtime.start_ns is not None:
            self._emit_gap(self.downtime)

        self._stopping.clear()
        self._stopped.clear()
        self._thread = threading.Thread(target=self._run, name="gitaudit-trace2-agent", daemon=True)
        self._thread.start()
        return self.downtime

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop listening, emit still-running commands as incomplete, record the stop time."""
        if self._thread is None:
            return
        self._stopping.set()
        try:
            assert self._wake_w is not None
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(timeout_s)
        self._thread = None
        self._save_state(stopped=True)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the agent stops; return True if it did within ``timeout_s``."""
        return self._stopped.wait(timeout_s)

    def wait_for_events(self, count: int, timeout_s: float = 10.0) -> bool:
        """Block until at least ``count`` git audit events were emitted since start.

        Returns:
            True when reached, False on timeout.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.stats.events_emitted < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def wait_for_lines(self, garbage: int = 0, timeout_s: float = 10.0) -> bool:
        """Block until at least ``garbage`` garbage lines were counted; True when reached."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.stats.garbage_lines < garbage:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # -- socket path and state -----------------------------------------------------
    def _prepare_path(self) -> None:
        path = self.socket_path
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise FileExistsError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody listens
            return
        finally:
            probe.close()
        raise FileExistsError(f"another process is listening on {path}")

    def _save_state(self, *, stopped: bool) -> None:
        now = time.time_ns()
        state = {
            "pid": os.getpid(),
            "socket": self.socket_path,
            "started_ns": self._started_ns,
            "heartbeat_ns": now,
            "stopped_ns": now if stopped else None,
        }
        try:
            _write_state(self.state_file, state)
        except OSError as exc:
            _log.error("cannot write trace2 agent state file %s: %s", self.state_file, exc)

    # -- loop ----------------------------------------------------------------------
    def _run(self) -> None:
        assert self._sel is not None
        next_beat = time.monotonic() + self.heartbeat_s
        try:
            while not self._stopping.is_set():
                try:
                    ready = self._sel.select(0.1)
                except OSError as exc:  # pragma: no cover - defensive
                    _log.error("select failed: %s", exc)
                    continue
                for key, _mask in ready:
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        try:
                            self._wake_r.recv(64)  # type: ignore[union-attr]
                        except OSError:
                            pass
                    else:
                        self._read(key.data)
                now = time.monotonic()
                self._emit_all(self._joiner.flush_due(now=now))
                if now >= next_beat:
                    self._save_state(stopped=False)
                    next_beat = now + self.heartbeat_s
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        assert self._sel is not None
        for key in list(self._sel.get_map().values()):
            if isinstance(key.data, _Conn):
                self._drain(key.data)
        self._emit_all(self._joiner.flush_all(now=time.monotonic()))
        for key in list(self._sel.get_map().values()):
            try:
                key.fileobj.close()  # type: ignore[union-attr]
            except OSError:
                pass
        self._sel.close()
        if self._wake_w is not None:
            self._wake_w.close()
        try:
            if self._listener is not None and stat.S_ISSOCK(os.lstat(self.socket_path).st_mode):
                os.unlink(self.socket_path)
        except OSError:
            pass
        self._stopped.set()

    def _accept(self) -> None:
        assert self._listener is not None and self._sel is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                _log.error("accept failed: %s", exc)
                return
            if self.stats.open_connections >= self.max_connections:
                self.stats.rejected_connections += 1
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Conn(sock, _peer_of(sock))
            self._sel.register(sock, selectors.EVENT_READ, conn)
            self.stats.connections += 1
            self.stats.open_connections += 1

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self._consume(conn, data)
            return
        self._close(conn)

    def _drain(self, conn: _Conn) -> None:
        """Read what is already buffered in the kernel for ``conn``, then close it."""
        while True:
            try:
                data = conn.sock.recv(_READ_SIZE)
            except OSError:
                break
            if not data:
                break
            self._consume(conn, data)
        self._close(conn)

    def _close(self, conn: _Conn) -> None:
        assert self._sel is not None
        if conn.buf and not conn.discarding:
            self._line(conn, bytes(conn.buf))  # a last line without its newline
        conn.buf.clear()
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        self.stats.open_connections -= 1
        if conn.sid is not None:
            self._emit_all(self._joiner.disconnected(conn.sid, now=time.monotonic()))

    def _consume(self, conn: _Conn, data: bytes) -> None:
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl == -1:
                break
            piece = data[start:nl]
            start = nl + 1
            if conn.discarding:
                conn.discarding = False
                conn.buf.clear()
                continue
            if conn.buf:
                conn.buf += piece
                piece = bytes(conn.buf)
                conn.buf.clear()
            self._line(conn, piece)
        rest = data[start:]
        if rest and not conn.discarding:
            conn.buf += rest
            if len(conn.buf) > self.max_line_bytes:
                conn.buf.clear()
                conn.discarding = True
                self._count_garbage()

    def _count_garbage(self) -> None:
        with self._cond:
            self.stats.garbage_lines += 1
            self._cond.notify_all()

    def _line(self, conn: _Conn, raw: bytes) -> None:
        if not raw.strip():
            return
        self.stats.lines += 1
        if len(raw) > self.max_line_bytes:
            self._count_garbage()
            return
        try:
            ev = parse_event_line(raw)
        except Trace2FormatError:
            self._count_garbage()
            return
        if ev is None:
            self.stats.ignored_lines += 1
            return
        if conn.sid is None:
            conn.sid = ev.sid
        try:
            records = self._joiner.feed(ev, now=time.monotonic(), wall_ns=time.time_ns(), peer=conn.peer)
        except Exception:  # noqa: BLE001 - a bad event must never stop the agent
            _log.exception("trace2 event could not be joined")
            self._count_garbage()
            return
        self._emit_all(records)

    # -- emission --------------------------------------------------------------------
    def _emit_all(self, records: list[AuditRecord]) -> None:
        for record in records:
            try:
                emit_record(record)
            except Exception:  # noqa: BLE001 - audit plumbing never takes the agent down
                _log.exception("could not emit the audit event of a git command")
                self.stats.emit_errors += 1
            with self._cond:
                self.stats.events_emitted += 1
                if record.error_type == "git.trace2.incomplete":
                    self.stats.incomplete += 1
                self._cond.notify_all()

    def _emit_gap(self, downtime: Downtime) -> None:
        assert downtime.start_ns is not None
        try:
            emit_event(
                sc.EventName.SECURITY_EVENT,
                attributes={
                    sc.SECURITY_EVENT_TYPE: "audit.gap",
                    sc.AUDIT_GAP_SOURCE: "git.trace2",
                    sc.AUDIT_GAP_START_NS: downtime.start_ns,
                    sc.AUDIT_GAP_END_NS: downtime.end_ns,
                    sc.AUDIT_GAP_DURATION_MS: downtime.duration_ms,
                },
                body=downtime.message,
                timestamp_ns=downtime.end_ns,
            )
        except Exception:  # noqa: BLE001
            _log.exception("could not emit the audit.gap event")


def emit_record(record: AuditRecord) -> str:
    """Emit one joined :class:`AuditRecord` through :func:`emit_event`; return its uid.

    When the record descends from an external trace (``GIT_TRACE2_PARENT_SID``
    set to an OTel trace id), the event is emitted inside that trace, so it
    joins the caller's other events; otherwise a fresh trace is started.
    """
    kwargs: dict[str, Any] = dict(
        attributes=record.attributes,
        body=record.body,
        outcome=record.outcome,
        duration_ms=record.duration_ms,
        error_type=record.error_type,
        timestamp_ns=record.timestamp_ns,
    )
    if record.trace_id is None:
        return emit_event(record.event_name, **kwargs)
    parent = SpanContext(
        trace_id=int(record.trace_id, 16),
        span_id=int.from_bytes(os.urandom(8), "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with trace.use_span(NonRecordingSpan(parent), end_on_exit=False):
        return emit_event(record.event_name, **kwargs)
