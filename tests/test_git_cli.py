"""`gitaudit git <args>`: behaves exactly like git and records one event."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from gitrepos import (  # noqa: F401 - isolated_git_config is an autouse fixture
    commits,
    isolated_git_config,
    origin_with_clone,
    rev,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from gitaudit.instrumentation import audit_context
from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.git_cli import clone_destination, run_passthrough

# a minimal typer app carrying the command as the lead will register it
APP = """
import typer
from gitaudit.query.cli.git import CONTEXT_SETTINGS, git_command
app = typer.Typer()
app.command("git", context_settings=CONTEXT_SETTINGS)(git_command)
@app.command()
def other() -> None:
    pass
app()
"""


def plain_git(*args, cwd=None):
    """(exit code, stdout, stderr) of plain git."""
    p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def repos(tmp_path):
    """(origin, work) with one commit on main."""
    return origin_with_clone(tmp_path)


@pytest.mark.parametrize(
    "args",
    [
        ["log", "--format=%H %s"],
        ["rev-parse", "--verify", "no-such-rev"],
        ["status", "--porcelain=v2", "--branch"],
        ["frobnicate"],
    ],
)
def test_passthrough_output_and_exit_code_match_plain_git(repos, capfd, audit_events, args):
    """stdout, stderr and exit code through the wrapper are byte-identical to plain git's."""
    _, work = repos
    expected = plain_git("-C", str(work), *args)
    capfd.readouterr()
    code = run_passthrough(["-C", str(work), *args])
    out, err = capfd.readouterr()
    assert (code, out.encode(), err.encode()) == expected
    attrs = dict(audit_events.records()[-1].log_record.attributes)
    assert attrs[sc.GIT_EXIT_CODE] == expected[0] and attrs[sc.GIT_COMMAND] == args[0]
    assert attrs[sc.AUDIT_OUTCOME] == ("success" if expected[0] == 0 else "failure")


def test_passthrough_push_event(repos, capfd, audit_events):
    """A push through the wrapper is a git.push event with actor, branch, revision and remote URL."""
    origin, work = repos
    commits(work, 2)
    with audit_context(user_id="bob", organization_id="acme"):
        code = run_passthrough(["-C", str(work), "push", "--force", "origin", "main"])
    assert code == 0 and rev(origin, "main") == rev(work)
    attrs = audit_events.attrs("git.push")
    assert attrs[sc.USER_ID] == "bob" and attrs[sc.AUDIT_ORGANIZATION_ID] == "acme"
    assert attrs[sc.AUDIT_OUTCOME] == "success" and attrs[sc.AUDIT_DURATION_MS] > 0
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main" and attrs[sc.VCS_REF_HEAD_REVISION] == rev(work)
    assert attrs[sc.VCS_REPOSITORY_URL_FULL] == str(origin) and attrs[sc.GIT_REPOSITORY_PATH] == str(work)
    assert list(attrs[sc.GIT_ARGV]) == ["git", "-C", str(work), "push", "--force", "origin", "main"]


def test_passthrough_clone_and_failure_without_repository(repos, tmp_path, capfd, audit_events, monkeypatch):
    """Clone records the new repository; a failing command outside any repository is still recorded."""
    origin, _ = repos
    monkeypatch.chdir(tmp_path)
    assert run_passthrough(["clone", "-q", f"file://{origin}"]) == 0
    attrs = audit_events.attrs("git.clone")
    assert attrs[sc.GIT_REPOSITORY_PATH] == str(tmp_path / "origin")
    assert attrs[sc.VCS_REF_HEAD_REVISION] == rev(origin, "main") and attrs[sc.VCS_REPOSITORY_NAME] == "origin"
    outside = tmp_path / "empty"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert run_passthrough(["-C", str(outside), "log"]) == 128
    attrs = audit_events.attrs("git.command")
    assert attrs[sc.ERROR_TYPE] == "git.exit_128" and sc.GIT_REPOSITORY_PATH not in attrs


def test_passthrough_missing_binary_returns_127(audit_events, capfd):
    """A git that cannot start gives exit 127 and a failure event, like a shell."""
    assert run_passthrough(["status"], git_binary="/nonexistent/git") == 127
    assert audit_events.attrs("git.command")[sc.ERROR_TYPE] == "FileNotFoundError"


def test_clone_destination():
    """The clone directory is the explicit argument or git's humanish name of the URL."""
    assert clone_destination(["--depth", "1", "https://h/org/repo.git"]) == ("https://h/org/repo.git", "repo")
    assert clone_destination(["-b", "x", "git@h:org/repo.git", "dest"]) == ("git@h:org/repo.git", "dest")
    assert clone_destination(["--bare", "/srv/repo/.git"]) == ("/srv/repo/.git", "repo.git")
    assert clone_destination(["--quiet"]) == (None, None)


class _Collector(BaseHTTPRequestHandler):
    received: list[ExportLogsServiceRequest] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        req = ExportLogsServiceRequest()
        req.ParseFromString(body)
        type(self).received.append(req)
        payload = ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    """A real OTLP/HTTP endpoint on a free loopback port collecting decoded requests."""
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Collector.received
    server.shutdown()


def _gitaudit_git(args, *, endpoint, cwd):
    env = {**os.environ, "GITAUDIT_ENDPOINT": endpoint, "GITAUDIT_FLUSH_TIMEOUT_MS": "1500"}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", APP, "git", *args], cwd=cwd, env=env, capture_output=True, check=False)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def test_gitaudit_git_command_end_to_end(repos, collector):
    """The typer command passes options to git, keeps its output and exit code, and exports the event over OTLP."""
    _, work = repos
    endpoint, received = collector
    args = ["rev-parse", "--verify", "--quiet", "--end-of-options", "no-such-rev"]
    code, out, err, _ = _gitaudit_git(args, endpoint=endpoint, cwd=work)
    assert (code, out, err) == plain_git(*args, cwd=work) and code == 1
    code, out, err, _ = _gitaudit_git(["log", "--format=%H", "-n", "1"], endpoint=endpoint, cwd=work)
    assert code == 0 and out.decode().strip() == rev(work) and err == b""
    deadline = time.monotonic() + 20  # the events are spooled, then shipped by a detached drain
    while True:
        records = [lr for req in received for rl in req.resource_logs for sl in rl.scope_logs
                   for lr in sl.log_records]
        if len(records) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    records.sort(key=lambda r: r.time_unix_nano)
    assert [r.event_name for r in records] == ["git.command", "git.command"]
    first = {kv.key: kv.value for kv in records[0].attributes}
    assert first[sc.GIT_EXIT_CODE].int_value == 1 and first[sc.ERROR_TYPE].string_value == "git.exit_1"
    assert first[sc.GIT_COMMAND].string_value == "rev-parse"
    assert first[sc.VCS_REF_HEAD_NAME].string_value == "main"
    assert len(records[0].trace_id) == 16 and any(records[0].trace_id)


def test_gitaudit_git_with_server_down_still_exits_with_gits_code(repos, tmp_path):
    """With no audit server listening, the command still returns git's exit code, within the flush timeout."""
    _, work = repos
    code, out, _, elapsed = _gitaudit_git(["rev-parse", "HEAD"], endpoint="http://127.0.0.1:1", cwd=work)
    assert code == 0 and out.decode().strip() == rev(work)
    assert elapsed < 8
