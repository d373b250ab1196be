"""Delivery guarantees end to end, against the real gitaudit server and store (issue 7's scenarios).

Each test breaks something on purpose -- the server goes away for 30 s in the
middle of a workload, the emitting process is SIGKILLed right after emitting --
and then counts, in the store, that every event is there exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from gitaudit.instrumentation import configure, emit_event, set_logger_provider
from gitaudit.query.api.app import create_app
from gitaudit.query.server import BackgroundServer, free_port
from gitaudit.query.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def _stored(store, service: str) -> tuple[int, int]:
    """(rows, distinct uids) of ``service``'s events in the store."""
    return store.query(
        f"SELECT count(), uniqExact(Uid) FROM {store.table} WHERE ServiceName = {{s:String}}", {"s": service})[0]


def _wait_stored(store, service: str, n: int, timeout_s: float) -> tuple[int, int]:
    deadline = time.monotonic() + timeout_s
    got = _stored(store, service)
    while got[1] < n and time.monotonic() < deadline:
        time.sleep(0.2)
        got = _stored(store, service)
    return got


def test_server_down_for_30s_mid_workload_loses_and_duplicates_nothing(store, tmp_path):
    """10,000 events with the server stopped for 30 s in the middle: all 10,000 stored, each exactly once."""
    port = free_port()
    settings = Settings(port=port)
    server = BackgroundServer(create_app(settings, store), port=port).start()
    provider = configure(endpoint=server.url, service_name="outage-workload", spool_dir=tmp_path / "spool",
                         sync_policy="always", spool_options={"backoff_initial_s": 0.2, "backoff_max_s": 2.0})
    uids: list[str] = []
    try:
        uids += [emit_event("git.fetch", attributes={"audit.organization.id": "acme"}) for _ in range(3000)]
        server.stop()
        outage_end = time.monotonic() + 30
        while time.monotonic() < outage_end:  # the workload goes on while the server is down
            uids += [emit_event("git.push", attributes={"audit.organization.id": "acme"}) for _ in range(100)]
            time.sleep(0.5)
        down_count = len(uids)
        server = BackgroundServer(create_app(settings, store), port=port).start()
        while len(uids) < 10_000:
            uids.append(emit_event("git.commit", attributes={"audit.organization.id": "acme"}))
        assert provider.force_flush(60_000)
    finally:
        provider.shutdown()
        set_logger_provider(None)
        server.stop()
    assert down_count - 3000 >= 1000  # the workload really went on during the outage
    assert len(set(uids)) == 10_000
    assert _wait_stored(store, "outage-workload", 10_000, 30) == (10_000, 10_000)


CHILD = textwrap.dedent(
    """
    import json, sys, time
    from gitaudit.instrumentation import configure, emit_event
    spool_dir, endpoint, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    provider = configure(endpoint=endpoint, service_name="killed-emitter", spool_dir=spool_dir)
    if n:
        uids = [emit_event("git.push", attributes={"audit.organization.id": "acme"}) for _ in range(n)]
        sys.stdout.write(json.dumps(uids) + "\\nemitted\\n")
        sys.stdout.flush()
        time.sleep(60)  # killed here
    else:  # the restarted service: ships what the killed one spooled, then exits cleanly
        provider.force_flush(30_000)
        provider.shutdown()
        sys.stdout.write("drained\\n")
    """
)


def test_sigkill_right_after_emitting_1000_then_restart_delivers_each_once(store, tmp_path):
    """An emitter SIGKILLed right after 1,000 emits: after the service restarts and drains, all 1,000 once."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    spool = tmp_path / "spool"
    with BackgroundServer(create_app(Settings(), store)) as server:
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: the first process cannot ship
        child = subprocess.Popen([sys.executable, str(script), str(spool), dead, "1000"], stdout=subprocess.PIPE,
                                 text=True, cwd=REPO_ROOT, env=dict(os.environ))
        uids = json.loads(child.stdout.readline())
        assert child.stdout.readline().strip() == "emitted"
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
        assert _stored(store, "killed-emitter") == (0, 0)
        restarted = subprocess.run([sys.executable, str(script), str(spool), server.url, "0"], capture_output=True,
                                   text=True, cwd=REPO_ROOT, timeout=120)
        assert restarted.returncode == 0 and "drained" in restarted.stdout, restarted.stderr[-2000:]
        assert _wait_stored(store, "killed-emitter", 1000, 30) == (1000, 1000)
    stored = {r[0] for r in store.query(
        f"SELECT Uid FROM {store.table} WHERE ServiceName = 'killed-emitter'")}
    assert stored == set(uids)
