"""`opentelemetry-instrument python app.py` audits GitPython with no code change (distro + entry points)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from gitaudit.query.api.app import create_app
from gitaudit.query.server import BackgroundServer
from gitaudit.query.settings import Settings

APP = textwrap.dedent(
    """
    import sys
    import git
    git.Repo.clone_from(sys.argv[1], sys.argv[2])
    """
)


def test_opentelemetry_instrument_audits_an_unmodified_gitpython_app(store, tmp_path):
    """An app that only imports GitPython, run under opentelemetry-instrument, has its clone stored."""
    source = tmp_path / "source"
    subprocess.run(["git", "init", "-q", "-b", "main", str(source)], check=True)
    subprocess.run(["git", "-C", str(source), "commit", "-q", "--allow-empty", "-m", "first"], check=True)
    app = tmp_path / "app.py"
    app.write_text(APP)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    with BackgroundServer(create_app(Settings(), store)) as server:
        env = {**os.environ, "GITAUDIT_ENDPOINT": server.url, "OTEL_SERVICE_NAME": "unmodified-app",
               "GITAUDIT_ORGANIZATION_ID": "acme"}
        run = subprocess.run([str(instrument), sys.executable, str(app), str(source), str(tmp_path / "clone")],
                             env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
        deadline = time.monotonic() + 20
        rows = []
        while time.monotonic() < deadline and not rows:
            rows = store.query(f"SELECT EventName, OrgId, LogAttributes['audit.outcome'] FROM {store.table} "
                               "WHERE ServiceName = 'unmodified-app'")
            time.sleep(0.2)
    assert rows == [("git.clone", "acme", "success")]
