"""Server-side hooks: real pushes to a real bare repository emit git.ref.update events.

The hooks run in git's own processes, so the events are read where they go in
production: a real OTLP/HTTP receiver (a ThreadingHTTPServer in the test
decoding protobuf ``ExportLogsServiceRequest`` bodies).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from typer.testing import CliRunner

from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.hook_install import CHAINED_SUFFIX, install, is_gitaudit_hook, uninstall
from gitaudit.instrumentation.hooks import (
    HookConfig,
    RefUpdate,
    is_protected,
    parse_updates,
    pusher_identity,
    run_hook,
)
from gitaudit.query.cli.hooks import app as hooks_app


def _value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class Receiver:
    """A minimal OTLP/HTTP logs receiver collecting (event_name, attributes, severity) tuples."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = ExportLogsServiceRequest.FromString(body)
                with receiver.lock:
                    for rl in req.resource_logs:
                        for sl in rl.scope_logs:
                            for rec in sl.log_records:
                                attrs = {kv.key: _value(kv.value) for kv in rec.attributes}
                                receiver.events.append({"name": rec.event_name, "attrs": attrs,
                                                        "severity": rec.severity_number})
                out = ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout_s: float = 15.0) -> list[dict]:
        """Wait until at least ``count`` events arrived (the spool drain is asynchronous)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= count:
                    return list(self.events)
            time.sleep(0.05)
        with self.lock:
            return list(self.events)

    def take(self, count: int) -> list[dict]:
        """Wait for ``count`` events, return them and forget them."""
        events = self.wait_for(count)
        with self.lock:
            self.events.clear()
        return events

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real OTLP/HTTP receiver on a free local port."""
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def _git(cwd: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=check)


def _rev(cwd: Path, rev: str = "HEAD") -> str:
    return _git(cwd, "rev-parse", rev).stdout.strip()


def _commit(work: Path, name: str) -> str:
    (work / name).write_text(name + "\n")
    _git(work, "add", name)
    _git(work, "commit", "-q", "-m", name)
    return _rev(work)


@pytest.fixture
def repos(tmp_path: Path):
    """(bare repository, work clone, push environment with a pusher identity)."""
    bare = tmp_path / "project.git"
    _git(tmp_path, "init", "-q", "--bare", str(bare))
    work = tmp_path / "work"
    _git(tmp_path, "init", "-q", "-b", "main", str(work))
    _git(work, "remote", "add", "origin", str(bare))
    env = dict(os.environ, GL_USERNAME="alice", USER="git", NO_PROXY="127.0.0.1,localhost",
               GITAUDIT_HOOK_TIMEOUT_S="20", GITAUDIT_HOOK_DRAIN_TIMEOUT_S="15")
    return bare, work, env


def _push(work: Path, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _git(work, "push", "-q", "origin", *args, env=env, check=check)


def _by_ref(events: list[dict]) -> dict[str, dict]:
    return {e["attrs"][sc.VCS_REF_HEAD_NAME]: e["attrs"] for e in events}


def test_push_lifecycle_create_update_force_delete_tag(repos, receiver, tmp_path):
    """Create, update, force-update, delete and tag pushes give one git.ref.update each with the right kind and counts."""
    bare, work, env = repos
    install(bare, spool_dir=tmp_path / "spool", endpoint=receiver.endpoint)

    a = _commit(work, "a")
    _push(work, env, "main")
    [create] = receiver.take(1)
    attrs = create["attrs"]
    assert create["name"] == "git.ref.update"
    assert attrs[sc.GIT_REF_UPDATE_KIND] == "create"
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main" and attrs[sc.VCS_REF_TYPE] == "branch"
    assert attrs[sc.VCS_REF_HEAD_REVISION] == a
    assert sc.GIT_REF_OLD_REVISION not in attrs
    assert attrs[sc.GIT_COMMIT_COUNT] == 1
    assert attrs[sc.GIT_REF_PROTECTED] is True
    assert attrs[sc.USER_ID] == "alice"
    assert attrs[sc.VCS_REPOSITORY_NAME] == "project"
    assert attrs[sc.GIT_REPOSITORY_PATH] == str(bare)
    assert attrs[sc.AUDIT_OUTCOME] == "success"

    _commit(work, "b")
    c = _commit(work, "c")
    _git(work, "checkout", "-q", "-b", "feature")
    f = _commit(work, "f")
    _git(work, "checkout", "-q", "main")
    _push(work, env, "main", "feature")
    got = _by_ref(receiver.take(2))
    assert got["main"][sc.GIT_REF_UPDATE_KIND] == "update"
    assert (got["main"][sc.GIT_REF_OLD_REVISION], got["main"][sc.VCS_REF_HEAD_REVISION]) == (a, c)
    assert got["main"][sc.GIT_COMMIT_COUNT] == 2
    assert got["feature"][sc.GIT_REF_UPDATE_KIND] == "create"
    # b, c, f: none was in the repository before this push (main's update brings b, c too)
    assert got["feature"][sc.GIT_COMMIT_COUNT] == 3
    assert got["feature"][sc.GIT_REF_PROTECTED] is False

    _git(work, "reset", "-q", "--hard", a)
    d = _commit(work, "d")
    _push(work, env, "--force", "main")
    [force] = receiver.take(1)
    attrs = force["attrs"]
    assert attrs[sc.GIT_REF_UPDATE_KIND] == "force-update"
    assert (attrs[sc.GIT_REF_OLD_REVISION], attrs[sc.VCS_REF_HEAD_REVISION]) == (c, d)
    assert attrs[sc.GIT_REF_COMMITS_DROPPED] == 2  # b and c
    assert attrs[sc.GIT_COMMIT_COUNT] == 1  # d
    assert attrs[sc.GIT_REF_PROTECTED] is True

    _push(work, env, "--delete", "feature")
    [delete] = receiver.take(1)
    attrs = delete["attrs"]
    assert attrs[sc.GIT_REF_UPDATE_KIND] == "delete"
    assert attrs[sc.GIT_REF_OLD_REVISION] == f
    assert sc.VCS_REF_HEAD_REVISION not in attrs
    assert attrs[sc.GIT_REF_COMMITS_DROPPED] == 3  # b, c, f: no other ref reaches them now
    assert _git(bare, "branch", "--list", "feature").stdout == ""

    _git(work, "tag", "-a", "-m", "release", "v1.0")
    _push(work, env, "v1.0")
    [tag] = receiver.take(1)
    attrs = tag["attrs"]
    assert (attrs[sc.VCS_REF_HEAD_NAME], attrs[sc.VCS_REF_TYPE]) == ("v1.0", "tag")
    assert attrs[sc.GIT_REF_UPDATE_KIND] == "create"
    assert attrs[sc.VCS_REF_HEAD_REVISION] == _rev(work, "refs/tags/v1.0")
    assert attrs[sc.GIT_COMMIT_COUNT] == 0


def test_rejected_push_is_recorded_as_denied_and_chained_hook_runs(repos, receiver, tmp_path):
    """A chained pre-receive still rejects the push; the refs are recorded as denied, never as success."""
    bare, work, env = repos
    seen = tmp_path / "pre-receive-stdin"
    original = bare / "hooks" / "pre-receive"
    original.write_text(
        "#!/bin/sh\n"
        "input=$(cat)\n"
        f"echo \"$input\" >> '{seen}'\n"
        "case \"$input\" in *refs/heads/blocked*) echo 'no pushes to blocked' >&2; exit 3;; esac\n"
        "exit 0\n"
    )
    original.chmod(0o755)
    install(bare, spool_dir=tmp_path / "spool", endpoint=receiver.endpoint)
    assert (bare / "hooks" / ("pre-receive" + CHAINED_SUFFIX)).exists()

    sha = _commit(work, "a")
    _push(work, env, "main")
    assert receiver.take(1)[0]["attrs"][sc.AUDIT_OUTCOME] == "success"
    assert f"{'0' * 40} {sha} refs/heads/main" in seen.read_text()

    _git(work, "branch", "blocked")
    proc = _push(work, env, "blocked", check=False)
    assert proc.returncode != 0
    assert "no pushes to blocked" in proc.stderr
    assert _git(bare, "rev-parse", "--verify", "-q", "refs/heads/blocked", check=False).returncode != 0
    [denied] = receiver.take(1)
    assert denied["name"] == "git.ref.update"
    assert denied["attrs"][sc.AUDIT_OUTCOME] == "denied"
    assert denied["attrs"][sc.VCS_REF_HEAD_NAME] == "blocked"
    assert "exit 3" in denied["attrs"][sc.AUDIT_ERROR_MESSAGE]
    assert denied["severity"] == 13  # WARN
    _git(work, "branch", "allowed")
    _push(work, env, "allowed")  # sentinel: spooled after anything the rejected push left
    events = receiver.take(1)
    time.sleep(0.3)
    assert [e["attrs"][sc.VCS_REF_HEAD_NAME] for e in events + receiver.events] == ["allowed"]


def test_chained_post_receive_gets_same_stdin_and_uninstall_restores(repos, receiver, tmp_path):
    """The original post-receive runs with git's stdin; uninstall puts it back byte for byte."""
    bare, work, env = repos
    seen = tmp_path / "post-receive-stdin"
    original_text = f"#!/bin/sh\ncat > '{seen}'\nexit 0\n"
    hook = bare / "hooks" / "post-receive"
    hook.write_text(original_text)
    hook.chmod(0o755)
    install(bare, spool_dir=tmp_path / "spool", endpoint=receiver.endpoint)
    install(bare, spool_dir=tmp_path / "spool", endpoint=receiver.endpoint)  # idempotent
    chained = bare / "hooks" / ("post-receive" + CHAINED_SUFFIX)
    assert chained.read_text() == original_text
    assert not (bare / "hooks" / ("post-receive" + CHAINED_SUFFIX + CHAINED_SUFFIX)).exists()

    sha = _commit(work, "a")
    _push(work, env, "main")
    assert seen.read_text() == f"{'0' * 40} {sha} refs/heads/main\n"
    assert len(receiver.take(1)) == 1

    result = uninstall(bare)
    assert sorted(result.written) == ["post-receive", "pre-receive"]
    assert result.chained == ["post-receive"]
    assert hook.read_text() == original_text and os.access(hook, os.X_OK)
    assert not chained.exists() and not (bare / "hooks" / "pre-receive").exists()
    _commit(work, "b")
    _push(work, env, "main")  # no gitaudit script left to run: nothing can be spooled
    time.sleep(0.3)
    assert receiver.events == []


def test_install_twice_without_original_hooks_chains_nothing(repos, tmp_path):
    """Installing twice leaves gitaudit's two scripts and no chained file."""
    bare, _, _ = repos
    for sample in (bare / "hooks").glob("*"):
        sample.unlink()
    install(bare, endpoint="http://127.0.0.1:9")
    result = install(bare, endpoint="http://127.0.0.1:9", protected=("prod",))
    assert result.chained == []
    names = sorted(p.name for p in (bare / "hooks").iterdir())
    assert names == ["post-receive", "pre-receive"]
    assert all(is_gitaudit_hook(bare / "hooks" / n) for n in names)
    assert '"protected":["prod"]' in (bare / "hooks" / "post-receive").read_text()


def test_local_update_ref_is_not_a_push(repos, receiver, tmp_path):
    """git update-ref, pack-refs and branch deletion run inside the bare repository emit nothing."""
    bare, work, env = repos
    sha = _commit(work, "a")
    _push(work, env, "main")  # before install: not audited
    install(bare, spool_dir=tmp_path / "spool", endpoint=receiver.endpoint)
    _git(bare, "update-ref", "refs/heads/local", sha)
    _git(bare, "pack-refs", "--all")
    _git(bare, "update-ref", "-d", "refs/heads/local")
    _git(work, "branch", "pushed")
    _push(work, env, "pushed")  # sentinel: spooled after anything the local updates left
    events = receiver.take(1)
    time.sleep(0.3)
    assert [e["attrs"][sc.VCS_REF_HEAD_NAME] for e in events + receiver.events] == ["pushed"]


def test_protected_patterns_and_pusher_variables_are_configurable(repos, receiver, tmp_path):
    """Custom --protected patterns and --pusher-var names decide git.ref.protected and user.id."""
    bare, work, env = repos
    install(bare, protected=("prod", "hotfix/*"), pusher_vars=("REMOTE_USER", "GL_USERNAME"),
            spool_dir=tmp_path / "spool", endpoint=receiver.endpoint)
    _commit(work, "a")
    env = dict(env, REMOTE_USER="bob")
    _push(work, env, "main:refs/heads/main", "main:refs/heads/prod", "main:refs/heads/hotfix/x",
          "main:refs/heads/release/1")
    got = _by_ref(receiver.take(4))
    assert {k: v[sc.GIT_REF_PROTECTED] for k, v in got.items()} == {
        "main": False, "prod": True, "hotfix/x": True, "release/1": False}
    assert {v[sc.USER_ID] for v in got.values()} == {"bob"}
    assert {v[sc.VCS_REPOSITORY_NAME] for v in got.values()} == {bare.name.removesuffix(".git")}  # the default


def test_repository_name_is_configurable_to_match_what_clients_record(repos, receiver, tmp_path):
    """--repository-name sets vcs.repository.name, so hook and client events share one repository name."""
    bare, work, env = repos
    res = CliRunner().invoke(hooks_app, ["install", str(bare), "--repository-name", "acme/app", "--endpoint",
                                         receiver.endpoint, "--spool-dir", str(tmp_path / "spool")])
    assert res.exit_code == 0, res.output
    _commit(work, "a")
    _push(work, env, "main:refs/heads/main")
    (event,) = receiver.take(1)
    assert event["attrs"][sc.VCS_REPOSITORY_NAME] == "acme/app"
    assert event["attrs"][sc.GIT_REPOSITORY_PATH] == os.path.abspath(bare)


def test_push_succeeds_when_gitaudit_is_broken(repos, tmp_path):
    """A missing interpreter, a dead endpoint or a bad config never fail or hold up the push."""
    bare, work, env = repos
    install(bare, python=str(tmp_path / "no-such-python"))
    _commit(work, "a")
    assert _push(work, env, "main").returncode == 0

    install(bare, endpoint="http://127.0.0.1:9")  # nothing listens on port 9
    _commit(work, "b")
    t0 = time.monotonic()
    assert _push(work, env, "main").returncode == 0
    assert time.monotonic() - t0 < 10

    text = (bare / "hooks" / "post-receive").read_text().replace("GITAUDIT_HOOK_CONFIG='{", "GITAUDIT_HOOK_CONFIG='{{")
    (bare / "hooks" / "post-receive").write_text(text)
    _commit(work, "c")
    proc = _push(work, env, "main")
    assert proc.returncode == 0
    assert "gitaudit: audit hook post-receive failed (JSONDecodeError)" in proc.stderr
    assert _rev(bare, "main") == _rev(work)


def test_cli_install_and_uninstall(repos, tmp_path):
    """`gitaudit hooks install/uninstall` write and remove the scripts and report what they did."""
    bare, _, _ = repos
    runner = CliRunner()
    res = runner.invoke(hooks_app, ["install", str(bare), "--protected", "prod", "--pusher-var", "WHO",
                                    "--endpoint", "http://127.0.0.1:9", "--spool-dir", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "installed" in res.output
    text = (bare / "hooks" / "post-receive").read_text()
    assert '"protected":["prod"]' in text and '"pusher_vars":["WHO"]' in text
    assert sys.executable in text
    res = runner.invoke(hooks_app, ["uninstall", str(bare)])
    assert res.exit_code == 0 and "removed" in res.output
    assert not (bare / "hooks" / "post-receive").exists()
    res = runner.invoke(hooks_app, ["install", str(tmp_path / "not-a-repo")])
    assert res.exit_code == 2
    (tmp_path / "work" / "sub").mkdir()
    res = runner.invoke(hooks_app, ["install", str(tmp_path / "work" / "sub")])  # inside a repo, not one
    assert res.exit_code == 2 and "not a git repository" in res.output


def test_run_hook_in_process_attributes(repos, audit_events, monkeypatch):
    """run_hook's attributes in-process: update kind and pusher from the first set variable."""
    bare, work, env = repos
    a = _commit(work, "a")
    b = _commit(work, "b")
    _push(work, env, "main")
    from gitaudit.instrumentation import hooks

    monkeypatch.setattr(hooks, "_open_pipeline", lambda repo, config: (lambda: None))
    monkeypatch.setenv("GITHUB_USER", "carol")
    monkeypatch.delenv("GL_USERNAME", raising=False)
    assert run_hook("post-receive", f"{a} {b} refs/heads/main\n", repo=str(bare)) == 0
    attrs = audit_events.attrs("git.ref.update")
    assert attrs[sc.GIT_REF_UPDATE_KIND] == "update"
    assert attrs[sc.GIT_COMMIT_COUNT] == 1
    assert attrs[sc.USER_ID] == "carol"


def test_helpers():
    """parse_updates skips junk; protection matches short branch names or full other refs; pusher order."""
    z = "0" * 40
    assert parse_updates(f"{z} {'a' * 40} refs/heads/x\n\njunk\n") == [RefUpdate(z, "a" * 40, "refs/heads/x")]
    assert is_protected("refs/heads/release/1.2", ("release/*",))
    assert not is_protected("refs/heads/feature/main", ("main",))
    assert is_protected("refs/tags/v1", ("refs/tags/v*",))
    assert not is_protected("refs/tags/main", ("main",))
    assert pusher_identity(("A", "B"), {"A": "", "B": "bee"}) == "bee"
    assert pusher_identity(("A",), {}) is None
    cfg = HookConfig(protected=("p",), spool_dir="/s")
    assert HookConfig.from_json(cfg.to_json()) == cfg
