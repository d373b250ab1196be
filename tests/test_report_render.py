"""Report rendering: HTML in headless Chromium (no console errors, screenshots), PDF, SVG charts, CSV tables.

Screenshots of every report are written to ``test-artifacts/report-<type>.png``
(git-ignored) for a human to look at.
"""

from __future__ import annotations

import io
import json
import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest
from analytics_seed import NS, insert
from report_seed import END, START, generate

from gitaudit.query.report_charts import bar_chart, column_chart
from gitaudit.query.report_common import ReportError, Subject
from gitaudit.query.report_render import CHROMIUM_FLAGS, render, render_html, render_pdf
from gitaudit.query.report_tables import csv_bytes, csv_zip, report_tables, table_csv
from gitaudit.query.reports import build_report, verify_report

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="/usr/bin/chromium is absent (Debian package 'chromium', installed by .ci/run)")


@pytest.fixture(scope="module")
def docs(chdb_dsn):
    """One report of each type over the seed dataset (a user named with markup, to prove escaping)."""
    from gitaudit.query.store.client import open_store

    db = f"rr_{uuid.uuid4().hex[:12]}"
    store = open_store(chdb_dsn, db)
    events = generate({"auditor_acme": "k1", "admin_all": "k2", "auditor_globex": "k3"})
    for e in [e for e in events if e.user == "bob" and START <= e.ts < END and e.name.startswith("git.")][:30]:
        e.attrs["user.id"] = "<img src=x onerror=alert(1)>"
    insert(store, events)
    out = {}
    for kind in ("soc2", "gdpr", "security", "usage"):
        subject = Subject("user", "alice") if kind == "security" else None
        out[kind] = build_report(store, kind, allowed_orgs=None, start_ns=START, end_ns=END, tz="Europe/Berlin",
                                 subject=subject, generated_at_ns=1_800_000_000 * NS, integrity=False)
    yield out
    store.command(f"DROP DATABASE IF EXISTS `{db}`")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           "--enable-logging=stderr", "--v=0", *args], capture_output=True, text=True, timeout=90)


def _console(stderr: str) -> list[str]:
    """Console messages (errors, CSP violations) Chromium logged."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Content Security Policy" in line]


@needs_chromium
@pytest.mark.parametrize("kind", ["soc2", "gdpr", "security", "usage"])
def test_html_renders_in_chromium_without_console_errors(docs, kind, tmp_path):
    """Each report renders in headless Chromium with no console message, and its screenshot is saved."""
    page = tmp_path / f"{kind}.html"
    page.write_text(render_html(docs[kind]), encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"report-{kind}.png"
    shot.unlink(missing_ok=True)
    run = _chromium(tmp_path, "--hide-scrollbars", "--window-size=1280,3000", f"--screenshot={shot}", page.as_uri())
    assert _console(run.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 30_000


@needs_chromium
def test_console_check_catches_errors_and_external_loads(tmp_path):
    """The console check is live: a script error and an external image both show up (negative control)."""
    page = tmp_path / "bad.html"
    html = render_html({"report": "usage", "title": "t", "description": "d", "sections": [],
                        "parameters": {"from": "2026-01-01T00:00:00.000000000Z", "to": "2026-01-02T00:00:00.000000000Z",
                                       "organizations": None, "tz": "UTC", "subject": None},
                        "generated_at": "x", "generator": {"name": "gitaudit", "version": "0"},
                        "data_range": {"events": 0, "first_event": None}, "sha256": "0" * 64})
    page.write_text(html.replace("</body>", '<img src="http://192.0.2.1/x.png"><script>boom()</script></body>'))
    run = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert len(_console(run.stderr)) >= 2


def test_html_is_self_contained_and_escaped(docs):
    """No script, no external URL; hostile values arrive escaped; the page names its hash and period."""
    for kind, doc in docs.items():
        html = render_html(doc)
        assert "<script" not in html.lower()
        assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in html
        assert doc["sha256"] in html and "2026-10-20 00:00:00Z" in html
        if kind in ("soc2", "usage"):
            assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


@needs_chromium
def test_pdf_is_printed_by_chromium(docs):
    """format=pdf gives a PDF document of several pages."""
    body, media, name = render(docs["usage"], "pdf")
    assert media == "application/pdf" and name.endswith(".pdf")
    assert body.startswith(b"%PDF-") and body.count(b"/Type /Page") + body.count(b"/Type/Page") >= 2


def test_pdf_without_chromium_is_a_clear_error(monkeypatch, tmp_path):
    """Without Chromium, PDF rendering raises PdfUnavailable naming the package to install."""
    from gitaudit.query.report_render import PdfUnavailable

    monkeypatch.setenv("GITAUDIT_CHROMIUM", str(tmp_path / "none"))
    with pytest.raises(PdfUnavailable, match="apt-get install chromium"):
        render_pdf("<html></html>")


def test_csv_tables_carry_the_json_numbers(docs):
    """Every list in the JSON is one CSV table with the same rows; the zip holds them plus the verifiable JSON."""
    doc = docs["soc2"]
    tables = {t.name: t for t in report_tables(doc)}
    access = next(s["data"] for s in doc["sections"] if s["id"] == "cc6_access")
    t = tables["cc6_access.repository_access"]
    assert len(t.rows) == len(access["repository_access"])
    assert dict(zip(t.columns, t.rows[0], strict=True)) == access["repository_access"][0]
    summary = dict(tables["cc6_access"].rows)
    assert summary["denied_total"] == access["denied_total"]
    assert tables["cc6_access.access_by_role.git"].columns == ["role", "users", "events", "repositories"]
    text = table_csv(doc, "cc6_access.repository_access").decode()
    assert text.splitlines()[0] == ",".join(t.columns) and text.count("\r\n") == len(t.rows) + 1
    with pytest.raises(ReportError, match="cc6_access.repository_access"):
        table_csv(doc, "nope")
    blob = csv_zip(doc)
    assert blob == csv_zip(doc)  # same report, same bytes
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        names = zf.namelist()
        assert names[:2] == ["report.json", "tables.json"] and "cc6_access.repository_access.csv" in names
        assert verify_report(zf.read("report.json"))
        listed = json.loads(zf.read("tables.json"))
        assert {x["file"] for x in listed} == set(names[2:])


def test_csv_cells_are_rfc4180():
    """Quotes, commas and newlines are quoted; None is empty; booleans are true/false."""
    from gitaudit.query.report_tables import Table

    t = Table("x", ["a", "b", "c", "d"], [['say "hi", ok', None, True, 1.5], ["line\nbreak", 0, False, 2]])
    assert csv_bytes(t) == b'a,b,c,d\r\n"say ""hi"", ok",,true,1.5\r\n"line\nbreak",0,false,2\r\n'


def test_svg_charts_escape_and_scale():
    """Bar and column charts escape every label and scale the longest bar to the plot width."""
    svg = str(bar_chart([("<b>x</b>", 10), ("y", 5)], title="T & U"))
    assert "<b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg and "T &amp; U" in svg
    widths = [float(part.split('"')[0]) for part in svg.split('width="')[2:] if part[0].isdigit()]
    assert 720 - 220 - 110 in widths and (720 - 220 - 110) / 2 in widths
    col = str(column_chart([("10-25", 4, 1), ("10-26", 2, None)], title="days", series=("events", "failures")))
    assert col.count("<rect") == 2 + 2 + 1 and "10-25" in col
    assert "no data" in str(bar_chart([], title="empty"))
