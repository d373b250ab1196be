"""The git trace2 agent: event parsing, joining, and real git processes over a real socket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.trace2_agent import Trace2Agent, read_downtime
from gitaudit.instrumentation.trace2_events import (
    Trace2FormatError,
    parse_event_line,
    parse_time_ns,
    trace_id_of_sid,
)
from gitaudit.instrumentation.trace2_install import current_target, install, target_for, uninstall
from gitaudit.instrumentation.trace2_join import INCOMPLETE_ERROR_TYPE, Trace2Joiner, join_lines

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

# --- a recording of `git clone -q r c` (git 2.39.5, GIT_TRACE2_EVENT=<file>), with
# region/data lines and the thread/file/line fields left out; $P parent, $C child sid
P = "20261129T170426.524155Z-H0a7c9cdf-P00001684"
C = P + "/20261129T170426.533428Z-H0a7c9cdf-P00001686"
_CLONE = r"""
{"event":"version","sid":"$P","time":"2026-11-29T17:04:26.524195Z","evt":"3","exe":"2.39.5"}
{"event":"start","sid":"$P","time":"2026-11-29T17:04:26.524209Z","t_abs":0.000419,"argv":["git","clone","-q","r","c"]}
{"event":"cmd_name","sid":"$P","time":"2026-11-29T17:04:26.524320Z","name":"clone","hierarchy":"clone"}
{"event":"def_repo","sid":"$P","time":"2026-11-29T17:04:26.524527Z","repo":1,"worktree":"/tmp/t2x/c"}
{"event":"child_start","sid":"$P","time":"2026-11-29T17:04:26.529777Z","child_id":0,"child_class":"transport/file","use_shell":true,"argv":["git-upload-pack '/tmp/t2x/r/.git'"]}
{"event":"version","sid":"$C","time":"2026-11-29T17:04:26.533477Z","evt":"3","exe":"2.39.5"}
{"event":"start","sid":"$C","time":"2026-11-29T17:04:26.533492Z","t_abs":0.000403,"argv":["git-upload-pack","/tmp/t2x/r/.git"]}
{"event":"cmd_name","sid":"$C","time":"2026-11-29T17:04:26.533666Z","name":"upload-pack","hierarchy":"clone/upload-pack"}
{"event":"exit","sid":"$C","time":"2026-11-29T17:04:26.539566Z","t_abs":0.006471,"code":0}
{"event":"atexit","sid":"$C","time":"2026-11-29T17:04:26.539593Z","t_abs":0.006503,"code":0}
{"event":"child_exit","sid":"$P","time":"2026-11-29T17:04:26.540142Z","child_id":0,"pid":5765,"code":0,"t_rel":0.010364}
{"event":"exit","sid":"$P","time":"2026-11-29T17:04:26.540582Z","t_abs":0.016792,"code":0}
{"event":"atexit","sid":"$P","time":"2026-11-29T17:04:26.540600Z","t_abs":0.016809,"code":0}
"""
CLONE_LINES = [ln.replace("$P", P).replace("$C", C) for ln in _CLONE.strip().splitlines()]


def _proc_lines(sid: str, argv: list[str], *, code: int | None = 0, errors: tuple[str, ...] = (),
                extra: tuple[dict, ...] = ()) -> list[str]:
    """Event lines of one git process in the shape git writes them."""
    t = "2026-11-29T17:00:00.000100Z"
    lines = [{"event": "version", "sid": sid, "time": t, "evt": "3", "exe": "2.39.5"},
             {"event": "start", "sid": sid, "time": t, "t_abs": 0.0001, "argv": argv}]
    lines += [{"sid": sid, "time": t, **e} for e in extra]
    lines += [{"event": "error", "sid": sid, "time": t, "msg": m} for m in errors]
    if code is not None:
        lines += [{"event": "exit", "sid": sid, "time": t, "t_abs": 0.0042, "code": code},
                  {"event": "atexit", "sid": sid, "time": t, "t_abs": 0.0043, "code": code}]
    return [json.dumps(x) for x in lines]


def _feed(joiner: Trace2Joiner, lines: list[str], now: float = 0.0) -> list:
    out = []
    for ln in lines:
        ev = parse_event_line(ln)
        if ev is not None:
            out.extend(joiner.feed(ev, now=now, wall_ns=1))
    return out


# --- parsing ------------------------------------------------------------------------


def test_parse_event_line_reads_kind_sid_time_and_t_abs():
    """A trace2 line gives kind, sid, time as Unix ns (UTC) and t_abs in seconds."""
    ev = parse_event_line(CLONE_LINES[1].encode() + b"\n")
    assert (ev.kind, ev.sid, ev.t_abs_s) == ("start", P, 0.000419)
    assert ev.time_ns == parse_time_ns("2026-11-29T17:04:26.524209Z") == 1795971866_524209000  # date -u -d 2026-11-29T17:04:26Z +%s
    assert ev.get("argv") == ["git", "clone", "-q", "r", "c"]


def test_parse_event_line_ignores_unknown_kinds_and_rejects_garbage():
    """Unknown event kinds are None (ignored); non-JSON, non-object, sid-less lines raise."""
    assert parse_event_line('{"event":"from_the_future","sid":"x"}') is None
    assert parse_event_line("   \n") is None
    for bad in ("not json", "[1,2]", '{"event":"start"}', b"\xff\xfe", '{"event":"start","sid":"s","t_abs":"x"}'):
        with pytest.raises(Trace2FormatError):
            parse_event_line(bad)


def test_trace_id_of_sid_takes_a_32_hex_prefix_only():
    """The trace id is the first sid component when it is 32 hex digits (not all zero)."""
    assert trace_id_of_sid(f"{TRACE_ID}/20261129T1-P1") == TRACE_ID
    assert trace_id_of_sid(f"{TRACE_ID}/a/b") == TRACE_ID
    assert trace_id_of_sid(P) is None
    assert trace_id_of_sid("0" * 32 + "/x") is None


# --- joining recorded lines ------------------------------------------------------------


def test_join_folds_child_process_into_one_clone_record():
    """A recorded clone (parent + upload-pack child) joins into one git.clone record."""
    (rec,) = join_lines(CLONE_LINES)
    a = rec.attributes
    assert rec.event_name == "git.clone" and rec.outcome == "success"
    assert a[sc.GIT_COMMAND] == "clone" and a[sc.GIT_EXIT_CODE] == 0
    assert a[sc.GIT_REPOSITORY_PATH] == "/tmp/t2x/c"
    assert a[sc.GIT_CHILD_PROCESS_COUNT] == 1
    assert a[sc.GIT_CHILD_PROCESS_NAMES] == ["git-upload-pack"]
    assert a[sc.GIT_CHILD_PROCESS_DURATION_MS] == pytest.approx(10.364)
    assert rec.duration_ms == pytest.approx(16.809)
    assert rec.timestamp_ns == parse_time_ns("2026-11-29T17:04:26.524209Z") - 419_000
    assert rec.trace_id is None and a[sc.GIT_TRACE2_SID] == P


def test_join_waits_for_a_parent_whose_stream_arrives_after_the_child():
    """A child read before its parent's stream is folded in, not reported on its own."""
    joiner = Trace2Joiner(orphan_grace_s=0.5)
    child = [ln for ln in CLONE_LINES if f'"sid":"{C}"' in ln]
    parent = [ln for ln in CLONE_LINES if f'"sid":"{P}"' in ln]
    assert _feed(joiner, child, now=0.0) == []
    assert joiner.flush_due(now=0.1) == []
    out = _feed(joiner, parent, now=0.2) + joiner.flush_due(now=5.0)
    assert [r.event_name for r in out] == ["git.clone"]


def test_join_unknown_git_parent_becomes_top_level_after_grace():
    """A process whose git parent never shows up is reported on its own after the grace."""
    joiner = Trace2Joiner(orphan_grace_s=0.5)
    sid = "20261129T1-Hx-P0001/20261129T2-Hx-P0002"
    assert _feed(joiner, _proc_lines(sid, ["git", "status"]), now=0.0) == []
    (rec,) = joiner.flush_due(now=0.6)
    assert rec.event_name == "git.command" and rec.attributes[sc.GIT_COMMAND] == "status"
    assert rec.trace_id is None


def test_join_external_trace_parent_is_top_level_with_trace_id():
    """sid '<trace id>/<own>' is a top-level command carrying that trace id, at once."""
    (rec,) = _feed(Trace2Joiner(), _proc_lines(f"{TRACE_ID}/20261129T1-Hx-P0003", ["git", "push", "origin", "main"]))
    assert rec.event_name == "git.push" and rec.trace_id == TRACE_ID


def test_join_failure_carries_exit_code_and_sanitized_error():
    """Exit 128 is failure git.exit_128 with the error text, URL credentials removed."""
    (rec,) = _feed(Trace2Joiner(), _proc_lines(
        "s-fail", ["git", "fetch", "https://bob:hunter2@example.com/r.git"], code=128,
        errors=("unable to access 'https://bob:hunter2@example.com/r.git/': 403",)))
    a = rec.attributes
    assert (rec.outcome, rec.error_type, a[sc.GIT_EXIT_CODE]) == ("failure", "git.exit_128", 128)
    assert a[sc.AUDIT_ERROR_MESSAGE] == "unable to access 'https://example.com/r.git/': 403"
    assert a[sc.GIT_ARGV] == ["git", "fetch", "https://example.com/r.git"]
    assert "hunter2" not in json.dumps(a) + rec.body


def test_join_masks_credential_config_values_in_argv():
    """-c http.extraHeader=... values are masked in git.argv, other -c values kept."""
    (rec,) = _feed(Trace2Joiner(), _proc_lines("s-c", [
        "git", "-c", "http.extraHeader=Authorization: Bearer s3cr3t", "-c", "core.pager=cat", "status"]))
    assert rec.attributes[sc.GIT_ARGV] == [
        "git", "-c", "http.extraHeader=[REDACTED]", "-c", "core.pager=cat", "status"]


@pytest.mark.parametrize(
    ("cmd_name", "argv", "expected"),
    [
        ("cherry-pick", ["git", "cherry-pick", "abc"], "git.cherry_pick"),
        ("switch", ["git", "switch", "main"], "git.checkout"),
        ("branch", ["git", "branch", "-D", "topic"], "git.branch.delete"),
        ("branch", ["git", "branch", "topic"], "git.command"),
        ("reset", ["git", "reset", "--hard"], "git.reset"),
        ("rebase", ["git", "rebase", "main"], "git.rebase"),
        ("status", ["git", "status"], "git.command"),
    ],
)
def test_join_names_events_from_cmd_name(cmd_name, argv, expected):
    """EventName follows the command git ran (cmd_name), branch -D being git.branch.delete."""
    (rec,) = _feed(Trace2Joiner(), _proc_lines("s-n", argv, extra=({"event": "cmd_name", "name": cmd_name},)))
    assert rec.event_name == expected and rec.attributes[sc.GIT_COMMAND] == cmd_name


def test_join_resolves_aliases():
    """'git bd x' with alias bd = 'branch -D' is a git.branch.delete carrying git.alias."""
    extra = ({"event": "alias", "alias": "bd", "argv": ["branch", "-D"]}, {"event": "cmd_name", "name": "branch"})
    (rec,) = _feed(Trace2Joiner(), _proc_lines("s-a", ["git", "bd", "x"], extra=extra))
    assert rec.event_name == "git.branch.delete" and rec.attributes[sc.GIT_ALIAS] == "bd"


def test_join_signal_is_failure_with_signal_type():
    """A 'signal' event (git killed) ends the command as failure git.signal_<n>."""
    lines = _proc_lines("s-sig", ["git", "gc"], code=None)
    lines.append(json.dumps({"event": "signal", "sid": "s-sig", "t_abs": 0.5, "signo": 15}))
    (rec,) = _feed(Trace2Joiner(), lines)
    assert (rec.outcome, rec.error_type, rec.attributes[sc.GIT_EXIT_CODE]) == ("failure", "git.signal_15", 143)


def test_join_flushes_unfinished_process_after_timeout():
    """No exit within flush_timeout_s: one failure record git.trace2.incomplete; late lines dropped."""
    joiner = Trace2Joiner(flush_timeout_s=30)
    lines = _proc_lines("s-hang", ["git", "fetch"], code=None)
    assert _feed(joiner, lines, now=0.0) == []
    assert joiner.flush_due(now=29.0) == []
    (rec,) = joiner.flush_due(now=30.0)
    assert (rec.outcome, rec.error_type) == ("failure", INCOMPLETE_ERROR_TYPE)
    assert rec.event_name == "git.fetch"
    late = _proc_lines("s-hang", ["git", "fetch"])[-2:]
    assert _feed(joiner, late, now=31.0) == [] and joiner.active == 0


def test_join_disconnect_without_exit_is_incomplete():
    """A stream that ends without an exit event is reported incomplete at once."""
    joiner = Trace2Joiner()
    _feed(joiner, _proc_lines("s-kill", ["git", "status"], code=None))
    (rec,) = joiner.disconnected("s-kill", now=1.0)
    assert rec.error_type == INCOMPLETE_ERROR_TYPE and "closed" in rec.attributes[sc.AUDIT_ERROR_MESSAGE]


# --- real git over a real socket -----------------------------------------------------


class _Env:
    """A trace2 agent on a short /tmp socket, and a git environment pointing at it."""

    def __init__(self, tmp_path: Path, sock_dir: str, **agent_kw) -> None:
        self.tmp = tmp_path
        self.sock = os.path.join(sock_dir, "a.sock")
        self.config = tmp_path / "gitconfig"
        self.state = tmp_path / "state.json"
        install(self.sock, git_config_file=self.config)
        self.env = dict(os.environ, GIT_CONFIG_GLOBAL=str(self.config), HOME=str(tmp_path))
        self.env.pop("GIT_TRACE2_PARENT_SID", None)
        self.agent_kw = agent_kw
        self.agent: Trace2Agent | None = None

    def start(self) -> Trace2Agent:
        self.agent = Trace2Agent(self.sock, state_file=self.state, **self.agent_kw)
        self.agent.start()
        return self.agent

    def git(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], env={**self.env, **env}, capture_output=True,
                              text=True, check=check, cwd=self.tmp)


@pytest.fixture
def sock_dir():
    """A short directory under /tmp (AF_UNIX paths are limited to 107 bytes)."""
    d = tempfile.mkdtemp(prefix="t2-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def t2(tmp_path, sock_dir):
    """A running agent (default settings); stopped after the test."""
    env = _Env(tmp_path, sock_dir)
    env.start()
    yield env
    if env.agent is not None:
        env.agent.stop()


def test_real_git_commands_become_one_event_each(t2, audit_events):
    """init, commit, clone (with child processes) and a failing checkout: one event each, right fields."""
    repo, clone = t2.tmp / "repo", t2.tmp / "clone"
    t2.git("init", "-q", str(repo))
    (repo / "f.txt").write_text("x\n")
    t2.git("-C", str(repo), "add", "f.txt")
    t2.git("-C", str(repo), "commit", "-q", "-m", "first")
    t2.git("clone", "-q", "--no-local", str(repo), str(clone))
    bad = t2.git("-C", str(repo), "checkout", "nope", check=False)
    assert bad.returncode == 1
    assert t2.agent.wait_for_events(5)
    time.sleep(0.3)  # nothing else (children) may show up as events of their own
    names = [r.log_record.event_name for r in audit_events.records()]
    assert names == ["git.command", "git.command", "git.commit", "git.clone", "git.checkout"]

    init, add, commit, cl, co = (dict(r.log_record.attributes) for r in audit_events.records())
    assert init[sc.GIT_COMMAND] == "init" and add[sc.GIT_COMMAND] == "add"
    assert commit[sc.GIT_REPOSITORY_PATH] == str(repo) and commit[sc.GIT_EXIT_CODE] == 0
    assert cl[sc.GIT_REPOSITORY_PATH] == str(clone)
    assert cl[sc.GIT_CHILD_PROCESS_COUNT] >= 1 and "git-upload-pack" in cl[sc.GIT_CHILD_PROCESS_NAMES]
    assert cl[sc.GIT_CHILD_PROCESS_DURATION_MS] > 0
    for a in (init, add, commit, cl, co):
        assert a[sc.AUDIT_DURATION_MS] > 0 and a[sc.PROCESS_PID] > 0
        assert a[sc.USER_ID] == str(os.getuid())
    assert (co[sc.AUDIT_OUTCOME], co[sc.ERROR_TYPE], co[sc.GIT_EXIT_CODE]) == ("failure", "git.exit_1", 1)
    assert co[sc.AUDIT_ERROR_MESSAGE] == "pathspec 'nope' did not match any file(s) known to git"
    commit_rec = audit_events.records()[2].log_record
    assert abs(commit_rec.timestamp - time.time_ns()) < 60e9  # the command's start, not 1970


def test_trace_parent_sid_becomes_the_events_trace_id(t2, audit_events):
    """git run with GIT_TRACE2_PARENT_SID=<trace id> yields an event in that trace."""
    t2.git("init", "-q", str(t2.tmp / "r"), GIT_TRACE2_PARENT_SID=TRACE_ID)
    assert t2.agent.wait_for_events(1)
    rec = audit_events.one("git.command").log_record
    assert format(rec.trace_id, "032x") == TRACE_ID
    assert rec.attributes[sc.GIT_TRACE2_SID].startswith(TRACE_ID + "/")


def test_garbage_and_split_lines_on_the_socket(t2, tmp_path, audit_events):
    """Garbage lines are counted and skipped; events split across writes are reassembled."""
    recording = tmp_path / "rec.json"
    subprocess.run(["git", "init", "-q", str(tmp_path / "r2")], check=True,
                   env={**t2.env, "GIT_TRACE2_EVENT": str(recording), "GIT_CONFIG_GLOBAL": os.devnull})
    payload = b"this is not json\n{\"event\":\"start\"}\n" + recording.read_bytes()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(t2.sock)
        for i in range(0, len(payload), 7):
            s.sendall(payload[i:i + 7])
            if i % 700 == 0:
                time.sleep(0.001)
    assert t2.agent.wait_for_events(1)
    assert t2.agent.stats.garbage_lines == 2
    assert audit_events.attrs("git.command")[sc.GIT_REPOSITORY_PATH] == str(tmp_path / "r2")
    t2.git("init", "-q", str(tmp_path / "r3"))  # the agent still works
    assert t2.agent.wait_for_events(2)


def test_many_concurrent_git_processes(t2, audit_events):
    """Twenty git processes at once each yield their own event."""
    procs = [subprocess.Popen(["git", "init", "-q", str(t2.tmp / f"r{i}")], env=t2.env) for i in range(20)]
    assert all(p.wait() == 0 for p in procs)
    assert t2.agent.wait_for_events(20)
    paths = {dict(r.log_record.attributes)[sc.GIT_REPOSITORY_PATH] for r in audit_events.records()}
    assert paths == {str(t2.tmp / f"r{i}") for i in range(20)}


def test_killed_git_process_is_reported_incomplete(t2, audit_events):
    """A git process killed with SIGKILL (no exit event) is a failure git.trace2.incomplete."""
    t2.git("init", "-q", str(t2.tmp / "r"))
    assert t2.agent.wait_for_events(1)
    p = subprocess.Popen(["git", "-C", str(t2.tmp / "r"), "cat-file", "--batch"], env=t2.env,
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    p.kill()
    p.wait()
    assert t2.agent.wait_for_events(2)
    a = audit_events.records()[1].log_record.attributes
    assert a[sc.ERROR_TYPE] == INCOMPLETE_ERROR_TYPE and a[sc.GIT_COMMAND] == "cat-file"


def test_hanging_git_process_is_flushed_after_timeout(tmp_path, sock_dir, audit_events):
    """A git process still running after flush_timeout_s is flushed as incomplete, once."""
    env = _Env(tmp_path, sock_dir, flush_timeout_s=0.5)
    agent = env.start()
    try:
        env.git("init", "-q", str(tmp_path / "r"))
        p = subprocess.Popen(["git", "-C", str(tmp_path / "r"), "cat-file", "--batch"], env=env.env,
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert agent.wait_for_events(2, timeout_s=5)
        assert p.poll() is None  # flushed while git still runs
        p.communicate(b"")
        time.sleep(0.3)
        assert agent.stats.events_emitted == 2 and agent.stats.incomplete == 1
    finally:
        agent.stop()


def test_git_keeps_working_when_agent_is_down(tmp_path, sock_dir):
    """With trace2 pointing at an absent socket, git commands succeed normally."""
    env = _Env(tmp_path, sock_dir)
    assert not os.path.exists(env.sock)
    env.git("init", "-q", str(tmp_path / "r"))
    res = env.git("-C", str(tmp_path / "r"), "commit", "--allow-empty", "-q", "-m", "x")
    assert res.returncode == 0 and res.stderr == ""
    assert env.git("-C", str(tmp_path / "r"), "rev-list", "--count", "HEAD").stdout.strip() == "1"


def test_restart_reports_downtime_and_emits_audit_gap(tmp_path, sock_dir, audit_events):
    """On restart the agent reports the window it was down and records an audit.gap event."""
    env = _Env(tmp_path, sock_dir)
    first = env.start()
    assert first.downtime.start_ns is None
    first.stop()
    stopped_ns = json.loads(env.state.read_text())["stopped_ns"]
    env.git("init", "-q", str(tmp_path / "r"))  # unseen: the agent is down
    second = env.start()
    try:
        d = second.downtime
        assert d.clean and d.start_ns == stopped_ns and d.end_ns > stopped_ns
        assert "unknowable" in d.message and "down from" in d.message
        a = audit_events.attrs("security.event")
        assert a[sc.SECURITY_EVENT_TYPE] == "audit.gap"
        assert (a[sc.AUDIT_GAP_START_NS], a[sc.AUDIT_GAP_END_NS]) == (stopped_ns, d.end_ns)
        assert audit_events.named("git.command") == []
    finally:
        second.stop()


def test_downtime_after_crash_uses_last_heartbeat(tmp_path):
    """A state file with a heartbeat but no stop time gives an unclean window from the heartbeat."""
    state = tmp_path / "s.json"
    state.write_text(json.dumps({"heartbeat_ns": 1_000_000_000, "stopped_ns": None}))
    d = read_downtime(state, 4_000_000_000)
    assert (d.start_ns, d.end_ns, d.clean, d.duration_ms) == (1_000_000_000, 4_000_000_000, False, 3000.0)
    assert "without a clean shutdown" in d.message


def test_agent_refuses_bad_socket_paths(tmp_path, sock_dir):
    """Too-long paths raise ValueError; a regular file or a live agent at the path raise FileExistsError."""
    with pytest.raises(ValueError):
        Trace2Agent("/tmp/" + "x" * 120, state_file=tmp_path / "s")
    plain = Path(sock_dir) / "plain"
    plain.write_text("")
    with pytest.raises(FileExistsError):
        Trace2Agent(plain, state_file=tmp_path / "s").start()
    with Trace2Agent(Path(sock_dir) / "live", state_file=tmp_path / "s"):
        with pytest.raises(FileExistsError):
            Trace2Agent(Path(sock_dir) / "live", state_file=tmp_path / "s2").start()


def test_stale_socket_file_is_replaced(tmp_path, sock_dir):
    """A socket file left by a dead agent is removed and the agent listens."""
    path = os.path.join(sock_dir, "stale")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    with Trace2Agent(path, state_file=tmp_path / "s"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(path)
    assert not os.path.exists(path)


# --- install / uninstall and the CLI -------------------------------------------------


def test_install_and_uninstall_in_a_config_file(tmp_path):
    """install writes eventTarget af_unix:stream:<abs path> and eventNesting; uninstall removes only ours."""
    cfg = tmp_path / "cfg"
    assert install("/tmp/x.sock", git_config_file=cfg) == "af_unix:stream:/tmp/x.sock"
    get = lambda k: subprocess.run(["git", "config", "--file", str(cfg), "--get", k],  # noqa: E731
                                   capture_output=True, text=True).stdout.strip()
    assert (get("trace2.eventTarget"), get("trace2.eventNesting")) == ("af_unix:stream:/tmp/x.sock", "1")
    assert uninstall("/tmp/other.sock", git_config_file=cfg) is False
    assert uninstall("/tmp/x.sock", git_config_file=cfg) is True
    assert current_target(git_config_file=cfg) is None and get("trace2.eventNesting") == ""
    subprocess.run(["git", "config", "--file", str(cfg), "trace2.eventTarget", "/var/log/mine"], check=True)
    assert uninstall(None, git_config_file=cfg) is False  # a user's own target is left alone


def test_cli_install_and_uninstall_write_the_global_config(tmp_path, monkeypatch):
    """'gitaudit trace2 install/uninstall' edit the global config ($GIT_CONFIG_GLOBAL), never ~/.gitconfig."""
    from gitaudit.query.cli.trace2 import app

    cfg = tmp_path / "global"
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("HOME", str(tmp_path))
    runner = CliRunner()
    res = runner.invoke(app, ["install", "--socket", "/tmp/y.sock"])
    assert res.exit_code == 0, res.output
    assert current_target("global") == target_for("/tmp/y.sock")
    res = runner.invoke(app, ["uninstall"])
    assert res.exit_code == 0 and "removed" in res.output
    assert current_target("global") is None


def test_cli_listen_runs_until_sigterm(tmp_path, sock_dir):
    """'gitaudit trace2 listen' prints a status line, serves, and stops cleanly on SIGTERM."""
    sock = os.path.join(sock_dir, "l.sock")
    code = "from gitaudit.query.cli.trace2 import app; app()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "listen", "--socket", sock, "--endpoint", "http://127.0.0.1:9",
         "--state-file", str(tmp_path / "s.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "300"})
    line = proc.stdout.readline()
    assert "listening" in line and sock in line
    assert os.path.exists(sock)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "stopped" in rest
    assert json.loads((tmp_path / "s.json").read_text())["stopped_ns"] > 0


def test_agent_thread_does_not_leak(t2):
    """Stopping the agent ends its thread and removes the socket file."""
    t2.agent.stop()
    assert not any(t.name == "gitaudit-trace2-agent" for t in threading.enumerate())
    assert not os.path.exists(t2.sock)
    t2.agent = None
