"""The ``make run`` demo: the embedded server plus a real git workload through it.

:func:`run_demo` opens the embedded store, serves the API and OTLP ingest on a
loopback port, configures the instrumentation to export there, and runs real
git commands in a scratch directory:

1. ``git clone --bare`` of this project's own repository (real history) as the
   shared "origin", and two working clones of it (alice and bob);
2. bob commits and pushes; alice commits a conflicting change, fetches, and
   rebases onto bob's work -- the rebase stops on a conflict (``conflict.detected``);
3. the conflict is resolved by :mod:`gitaudit.instrumentation.demo_resolver`
   through the real ``anthropic`` client pointed at a local Messages API
   stand-in (no network here), then ``rebase --continue`` and a push;
4. a push to a remote that does not exist, recorded as a failure.

It then searches the store through the API and prints the events it found.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from gitaudit.instrumentation import audit_context, configure, set_logger_provider
from gitaudit.instrumentation.git_api import Git
from gitaudit.instrumentation.version import __version__

from .api.app import create_app
from .server import BackgroundServer
from .settings import Settings
from .store.client import open_store

DEMO_FILE = "DEMO-CONFLICT.md"


@dataclass
class DemoResult:
    """What the demo did: the server URL, the session id and the events found."""

    url: str
    session_id: str
    events: list[dict[str, Any]] = field(default_factory=list)


def project_source(start: Path | None = None) -> str | None:
    """The git repository the demo clones: the one containing ``start`` (cwd), if it has commits."""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start or Path.cwd(),
                             capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run(["git", "rev-parse", "--verify", "HEAD"], cwd=top, capture_output=True, check=True)
        return top
    except (subprocess.CalledProcessError, OSError):
        return None


def _seed_repository(path: Path) -> str:
    """A small repository with history, used when the demo is not run from a git checkout."""
    path.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "gitaudit demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
           "GIT_COMMITTER_NAME": "gitaudit demo", "GIT_COMMITTER_EMAIL": "demo@example.com"}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True, env=env)
    for i in range(3):
        (path / "README.md").write_text(f"seed revision {i}\n")
        subprocess.run(["git", "add", "."], cwd=path, check=True, env=env)
        subprocess.run(["git", "commit", "-q", "-m", f"seed {i}"], cwd=path, check=True, env=env)
    return str(path)


def _write_commit_identity(repo: Path, name: str) -> None:
    subprocess.run(["git", "config", "user.name", name], cwd=repo, check=True)
    subprocess.run(["git", "config", "user.email", f"{name}@example.com"], cwd=repo, check=True)


def run_workload(work: Path, source: str, console: Console) -> None:
    """Run the audited git workload in ``work`` (see the module docstring)."""
    from gitaudit.instrumentation import ensure_trace
    from gitaudit.instrumentation.anthropic_instrumentor import AnthropicInstrumentor
    from gitaudit.instrumentation.claude_standin import ClaudeStandIn
    from gitaudit.instrumentation.demo_resolver import resolve_conflicts

    top = Git(work, env={"GIT_EDITOR": "true"})
    console.print(f"  clone --bare {source} -> origin.git")
    origin = str(work / "origin.git")
    with audit_context(user_id="ci-bot"):
        top.clone(source, "origin.git", bare=True, check=True)
    for who in ("alice", "bob"):
        with audit_context(user_id=who):
            top.clone(origin, who, check=True)
        _write_commit_identity(work / who, who)
    alice = Git(work / "alice", env={"GIT_EDITOR": "true"})
    bob = Git(work / "bob", env={"GIT_EDITOR": "true"})
    branch = alice.head()[0] or "main"

    with audit_context(user_id="bob"):
        (work / "bob" / DEMO_FILE).write_text("# Release notes\n\n- bob: speed up clone by 2x\n")
        bob.command("add", DEMO_FILE)
        bob.commit("Add release notes (bob)", check=True)
        bob.push("origin", branch, check=True)
        console.print("  bob committed and pushed")

    with audit_context(user_id="alice"):
        (work / "alice" / DEMO_FILE).write_text("# Release notes\n\n- alice: audit every push\n")
        alice.command("add", DEMO_FILE)
        alice.commit("Add release notes (alice)", check=True)
        alice.fetch("origin", check=True)
        instrumentor = AnthropicInstrumentor()
        instrumentor.instrument()
        standin = ClaudeStandIn().start()
        try:
            # one trace for the rebase, its conflicts, the Claude requests and the resolutions
            with ensure_trace("demo.rebase"):
                rebase = alice.rebase(f"origin/{branch}")
                console.print(f"  alice fetched and rebased: {len(rebase.conflicts)} conflict(s)")
                if rebase.conflicts:
                    detected = {c.path: uid for c, uid in zip(rebase.conflicts, rebase.conflict_uids)}
                    resolve_conflicts(str(work / "alice"), base_url=standin.url, api_key="demo-standin",
                                      detected_uids=detected)
                    alice.rebase(continue_=True, check=True)
                    console.print(f"  conflict resolved by Claude (local stand-in at {standin.url}); "
                                  "rebase continued")
        finally:
            standin.stop()
            instrumentor.uninstrument()
        alice.push("origin", branch, check=True)
        failed = alice.push("nowhere", branch)
        console.print(f"  alice pushed; a push to a missing remote failed (exit {failed.exit_code})")


def run_demo(settings: Settings | None = None, *, serve_forever: bool = True,
             console: Console | None = None, workdir: Path | None = None) -> DemoResult:
    """Start the embedded server, run the workload, print the events; serve until Ctrl-C.

    Args:
        settings: server settings (store DSN, host, port).
        serve_forever: keep serving after the workload until interrupted.
        console: where to print.
        workdir: scratch directory for the repositories (default: a temp dir).

    Returns:
        A :class:`DemoResult` (when ``serve_forever`` is False, or after Ctrl-C).
    """
    from .cli.search import events_table

    settings = settings or Settings()
    if console is None:
        console = Console()
        if not console.is_terminal:  # redirected: do not squeeze the table into 80 columns
            console = Console(width=140)
    store = open_store(settings.clickhouse_dsn, settings.database)
    server = BackgroundServer(create_app(settings, store), settings.host, settings.port).start()
    console.print(f"[bold]gitaudit {__version__}[/] serving on {server.url} "
                  f"(store: {settings.clickhouse_dsn}; no API keys: loopback demo mode)")
    provider = configure(endpoint=server.url, service_name="gitaudit-demo")
    session_id = str(uuid.uuid4())
    work = workdir or Path(tempfile.mkdtemp(prefix="gitaudit-demo-"))
    source = project_source() or _seed_repository(work / "seed")
    try:
        with audit_context(organization_id="demo-org", session_id=session_id, client_address="127.0.0.1",
                           user_agent=f"gitaudit-demo/{__version__}", job_id=f"demo-{session_id[:8]}"):
            run_workload(work, source, console)
        provider.force_flush(10_000)
        events = _wait_for_events(server.url, session_id)
        console.print(events_table(list(reversed(events)), org=False,
                                   title=f"{len(events)} audit events of this run "
                                         f"(organization demo-org, session.id {session_id})"))
        console.print(f"\nAPI docs: {server.url}/docs   events: {server.url}/api/v1/events   "
                      f"health: {server.url}/healthz")
        console.print(f"CLI: .venv/bin/gitaudit search --endpoint {server.url} --event git.push")
        result = DemoResult(server.url, session_id, events)
        if serve_forever:
            console.print("serving until Ctrl-C ...")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                console.print("stopped")
        return result
    finally:
        provider.shutdown()
        set_logger_provider(None)
        server.stop()


def _wait_for_events(url: str, session_id: str, timeout_s: float = 15.0) -> list[dict[str, Any]]:
    """Search the server for this session's events until the count stops growing."""
    deadline = time.monotonic() + timeout_s
    last: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        resp = httpx.get(f"{url}/api/v1/events", params={"q": f'session.id:"{session_id}"', "limit": 200},
                         timeout=10)
        resp.raise_for_status()
        events = resp.json()["events"]
        if events and len(events) == len(last):
            return events
        last = events
        time.sleep(0.3)
    return last
