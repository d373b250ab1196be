"""`gitaudit serve` and `gitaudit run-demo` as real processes: start, answer, refuse a busy port, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gitaudit.query.server import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent


def _gitaudit(*args: str, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gitaudit.query.cli.main", *args], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_healthy(url: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).json()
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"no server at {url}")


def test_serve_starts_answers_and_refuses_a_busy_port(tmp_path):
    """serve opens the store, answers /healthz; a second serve on the same port exits 2 with a clear error."""
    port = free_port()
    env = {**os.environ, "GITAUDIT_CLICKHOUSE_DSN": f"chdb://{tmp_path}/store", "GITAUDIT_SEAL_INTERVAL_S": "0"}
    server = _gitaudit("serve", "--port", str(port), env=env)
    try:
        health = _wait_healthy(f"http://127.0.0.1:{port}")
        assert (health["status"], health["store"]) == ("ok", "ok")
        second = _gitaudit("serve", "--port", str(port), env=env)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2 and "already in use" in err and "Traceback" not in err
    finally:
        server.send_signal(signal.SIGINT)
        _, first_err = server.communicate(timeout=30)
    assert server.returncode == 0
    assert "no API keys required: bound to loopback" in first_err  # says auth is off, as run-demo does


def test_serve_reports_a_locked_store_clearly(tmp_path):
    """A second process on the same embedded store gets a one-line error naming the cause, not a traceback."""
    env = {**os.environ, "GITAUDIT_CLICKHOUSE_DSN": f"chdb://{tmp_path}/store", "GITAUDIT_SEAL_INTERVAL_S": "0"}
    port = free_port()
    first = _gitaudit("serve", "--port", str(port), env=env)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}")
        second = _gitaudit("serve", "--port", str(free_port()), env=env)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2, err[-2000:]
        assert "embedded store" in err and "Traceback" not in err
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)


def test_run_demo_command_prints_the_trail_and_exits_with_no_serve(tmp_path):
    """`gitaudit run-demo --no-serve` runs the workload, prints the events table and the docs URL, exits 0."""
    env = {**os.environ, "GITAUDIT_SEAL_INTERVAL_S": "0", "COLUMNS": "200"}
    port = free_port()
    demo = _gitaudit("run-demo", "--no-serve", "--port", str(port), "--dsn", f"chdb://{tmp_path}/store", env=env)
    out, err = demo.communicate(timeout=300)
    assert demo.returncode == 0, err[-3000:]
    for needle in ("git.clone", "git.push", "conflict.detected", "claude.request", "conflict.resolved",
                   f"http://127.0.0.1:{port}/docs"):
        assert needle in out, needle
