"""The Grafana dashboards: valid models, generated from code, and every query runs on real data.

Each panel's and variable's SQL is expanded exactly as grafana-clickhouse-datasource
expands it (``dashboards/macros.py``) for a fixed one-day range, then run on a
real embedded store holding the seeded sample data set (``dashboards/sample_data.py``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml

from gitaudit.instrumentation import semconv as sc

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = ROOT / "dashboards"


def _load(name: str):
    """Import ``dashboards/<name>.py`` (a data folder, not a package)."""
    mod_name = f"gitaudit_dashboards_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, DASHBOARDS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


generate = _load("generate")
macros = _load("macros")
sample_data = _load("sample_data")

FROM_MS, TO_MS = sample_data.RANGE[0] // 1_000_000, sample_data.RANGE[1] // 1_000_000
RANGE = macros.TimeRange(FROM_MS, TO_MS)
INTERVAL_MS = 300_000
JSON_FILES = sorted((DASHBOARDS_DIR / "json").glob("*.json"))
SPECS = generate.panel_specs()


def _dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in JSON_FILES}


def _panel_cases() -> list[tuple[str, str]]:
    return [(uid, title) for uid, panels in SPECS.items() for title in panels]


@pytest.fixture(scope="module")
def loaded(chdb_dsn):
    """One database in the session's chDB store holding the 2,000-event sample (module-wide, read-only)."""
    from gitaudit.query.store.client import open_store
    from gitaudit.query.store.schema import INSERT_COLUMNS

    db = f"t_dash_{uuid.uuid4().hex[:10]}"
    store = open_store(chdb_dsn, db)
    store.insert_rows(sample_data.sample_rows(seed=11), INSERT_COLUMNS)
    yield store
    store.command(f"DROP DATABASE IF EXISTS `{db}`")


def _run(store, raw_sql: str, variables: dict) -> tuple[list[str], list[tuple]]:
    """Expand ``raw_sql`` as the plugin would, point it at the test database, run it.

    Returns the result's column names (from ``DESCRIBE``, so known even for
    an empty result) and rows.
    """
    sql = macros.expand(raw_sql, RANGE, interval_ms=INTERVAL_MS, variables=variables)
    assert "$" not in sql.replace("$__all", ""), f"unexpanded macro or variable left in:\n{sql}"
    assert "FROM otel_logs" in sql
    sql = re.sub(r"\bFROM otel_logs\b", f"FROM {store.table}", sql)
    columns = [r[0] for r in store.query(f"DESCRIBE ({sql})")]
    return columns, store.query(sql)


def _all_vars(store) -> dict:
    """Every variable at "All", with its options as the variable query would list them."""
    out = {}
    for name, (_, column) in generate.VARIABLES.items():
        values = [r[0] for r in store.query(f"SELECT DISTINCT {column} FROM {store.table} WHERE {column} != ''")]
        out[name] = macros.Variable.all(sorted(values))
    return out


# ---- the models -----------------------------------------------------------------------

def test_every_dashboard_loads_into_foundation_sdk_models():
    """Each JSON loads into grafana-foundation-sdk's Dashboard with typed ClickHouse targets and four variables."""
    from grafana_foundation_sdk.models.dashboard import Dashboard, Panel

    assert {p.stem for p in JSON_FILES} == {s.uid for s in generate.DASHBOARDS}
    for uid, data in _dashboards().items():
        board = Dashboard.from_json(data)
        assert board.uid == uid and board.title.startswith("GitAudit / ")
        assert [v.name for v in board.templating.list_val] == ["org", "user", "repository", "event"]
        for var in board.templating.list_val:
            assert var.multi and var.include_all and var.datasource.uid == generate.DATASOURCE_UID
            assert var.query["rawSql"].startswith("SELECT DISTINCT ")
        assert board.panels
        for panel in board.panels:
            assert isinstance(panel, Panel)
            assert panel.datasource.type_val == "grafana-clickhouse-datasource"
            assert panel.targets and all(isinstance(t, generate.ClickHouseQuery) for t in panel.targets)
            assert all("FROM otel_logs" in t.raw_sql for t in panel.targets)


def test_dashboard_json_has_the_grafana_model_fields():
    """uid, title, schemaVersion, unique panel ids inside the 24-column grid, rawSql targets, templating list."""
    for uid, data in _dashboards().items():
        assert data["uid"] == uid and data["title"] and isinstance(data["schemaVersion"], int)
        assert isinstance(data["templating"]["list"], list) and len(data["templating"]["list"]) == 4
        ids = [p["id"] for p in data["panels"]]
        assert len(ids) == len(set(ids))
        for panel in data["panels"]:
            pos = panel["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0
            assert panel["datasource"] == {"type": "grafana-clickhouse-datasource", "uid": "gitaudit-clickhouse"}
            assert panel["options"] is not None
            for target in panel["targets"]:
                assert target["editorType"] == "sql" and target["rawSql"] and target["refId"]
                assert target["format"] == {"timeseries": 0, "logs": 2}.get(panel["type"], 1)


def test_dashboards_link_to_each_other_keeping_time_and_variables():
    """Every dashboard carries the gitaudit tag and a tag link to the others that keeps time and variables."""
    for data in _dashboards().values():
        assert "gitaudit" in data["tags"]
        link = data["links"][0]
        assert link["type"] == "dashboards" and link["tags"] == ["gitaudit"]
        assert link["includeVars"] is True and link["keepTime"] is True
    overview_links = json.dumps(_dashboards()["gitaudit-security"])
    assert "/d/gitaudit-overview?var-user=${__value.raw}" in overview_links


def test_generated_json_equals_the_generator_output():
    """The committed JSON is exactly what dashboards/generate.py renders (no hand edits, no stale files)."""
    rendered = generate.render_all()
    assert sorted(rendered) == [p.name for p in JSON_FILES]
    for name, text in rendered.items():
        assert (DASHBOARDS_DIR / "json" / name).read_text() == text, f"{name} is stale: run dashboards/generate.py"
    assert generate.main(["--check"]) == 0


def test_levels_come_from_severity_number_never_severity_text():
    """No query reads SeverityText; level expressions use the SeverityNumber ranges."""
    for data in _dashboards().values():
        sqls = [t["rawSql"] for p in data["panels"] for t in p["targets"]]
        sqls += [v["query"]["rawSql"] for v in data["templating"]["list"]]
        assert not any("SeverityText" in sql for sql in sqls)
        for panel in data["panels"]:
            if "level" in SPECS[data["uid"]][panel["title"]].columns:
                assert generate.LEVEL in panel["targets"][0]["rawSql"]
    assert "SeverityNumber >= 21, 'fatal'" in generate.LEVEL and "SeverityNumber >= 1, 'trace'" in generate.LEVEL


def test_provisioning_files():
    """The datasource is the ClickHouse plugin with OTel logs on otel_logs; the provider serves the JSON folder."""
    ds = yaml.safe_load((DASHBOARDS_DIR / "provisioning/datasources/clickhouse.yaml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource" and source["uid"] == generate.DATASOURCE_UID
    logs_cfg = source["jsonData"]["logs"]
    assert logs_cfg["defaultTable"] == "otel_logs" and logs_cfg["otelEnabled"] is True
    assert logs_cfg["timeColumn"] == "Timestamp" and logs_cfg["messageColumn"] == "Body"
    assert "levelColumn" not in logs_cfg
    assert "password" in source["secureJsonData"] and "password" not in source["jsonData"]
    prov = yaml.safe_load((DASHBOARDS_DIR / "provisioning/dashboards/gitaudit.yaml").read_text())
    assert prov["providers"][0]["type"] == "file" and prov["providers"][0]["options"]["path"]


# ---- the queries on real data ---------------------------------------------------------

def test_sample_data_covers_every_event_name(loaded):
    """The seeded data set holds every EventName of the event model."""
    names = {r[0] for r in loaded.query(f"SELECT DISTINCT EventName FROM {loaded.table}")}
    assert names == {str(e) for e in sc.EventName}
    assert loaded.count() == 2000


@pytest.mark.parametrize(("uid", "title"), _panel_cases())
def test_panel_query_returns_its_columns_and_rows(loaded, uid, title):
    """With every variable at All, the panel's expanded SQL runs and returns its columns and at least one row."""
    data = _dashboards()[uid]
    (panel,) = [p for p in data["panels"] if p["title"] == title]
    columns, rows = _run(loaded, panel["targets"][0]["rawSql"], _all_vars(loaded))
    assert tuple(columns) == SPECS[uid][title].columns
    assert rows, f"{uid} / {title} returned no rows"


@pytest.mark.parametrize("uid", sorted(SPECS))
def test_panel_queries_run_with_selected_values(loaded, uid):
    """With specific multi-value selections (quoted by the plugin), every panel query still runs."""
    variables = _all_vars(loaded) | {
        "org": macros.Variable(["acme", "globex"]), "user": macros.Variable(["alice"]),
        "repository": macros.Variable(["acme/app"]),
    }
    for panel in _dashboards()[uid]["panels"]:
        columns, rows = _run(loaded, panel["targets"][0]["rawSql"], variables)
        assert tuple(columns) == SPECS[uid][panel["title"]].columns
        for row in rows:
            named = dict(zip(columns, row, strict=True))
            assert named.get("user", "alice") in ("alice", "")
            assert named.get("organization", "acme") in ("acme", "globex")


@pytest.mark.parametrize("uid", sorted(SPECS))
def test_variable_queries_list_values(loaded, uid):
    """Each variable query returns one column of values; user cascades on the selected organization."""
    variables = _all_vars(loaded)
    for var in _dashboards()[uid]["templating"]["list"]:
        columns, rows = _run(loaded, var["query"]["rawSql"], variables)
        assert len(columns) == 1 and rows
    user_sql = next(v for v in _dashboards()[uid]["templating"]["list"] if v["name"] == "user")["query"]["rawSql"]
    _, rows = _run(loaded, user_sql, variables | {"org": macros.Variable(["initech"])})
    users = {r[0] for r in rows}
    assert {"grace", "heidi"} <= users
    assert not users & {u for u, (org, _) in sample_data.USERS.items() if org != "initech"}
    event_sql = next(v for v in _dashboards()[uid]["templating"]["list"] if v["name"] == "event")["query"]["rawSql"]
    _, rows = _run(loaded, event_sql, variables)
    if uid == "gitaudit-overview":
        assert all(r[0].startswith("git.") for r in rows)
    if uid in ("gitaudit-security", "gitaudit-compliance"):
        assert {r[0] for r in rows} == {str(e) for e in sc.EventName}


def _panel_rows(store, uid: str, title: str, variables: dict | None = None) -> list[dict]:
    panel = next(p for p in _dashboards()[uid]["panels"] if p["title"] == title)
    columns, rows = _run(store, panel["targets"][0]["rawSql"], variables or _all_vars(store))
    return [dict(zip(columns, r, strict=True)) for r in rows]


def test_failure_rate_matches_the_data(loaded):
    """The overview's failure rate equals failures / git operations counted from the sample records."""
    recs = [r for r in sample_data.sample_records(seed=11)
            if r.event_name.startswith("git.") and sample_data.RANGE[0] <= r.time_unix_nano <= sample_data.RANGE[1]]
    expected = sum(r.attributes[sc.AUDIT_OUTCOME] == "failure" for r in recs) / len(recs)
    (row,) = _panel_rows(loaded, "gitaudit-overview", "Failure rate")
    assert row["failure_rate"] == pytest.approx(expected)


def test_every_anomaly_rule_fires_on_the_seeded_anomalies(loaded):
    """The seeded protected-ref rewrites, new addresses, failure burst, off-hours work and clone burst are all flagged."""
    rules = {r["rule"]: r for r in _panel_rows(loaded, "gitaudit-security", "Anomalies by rule")}
    assert set(rules) == {"protected-ref-rewrite", "new-client-address", "failure-burst", "outside-working-hours",
                          "clone-burst"}
    new = {(r["user"], r["address"][:10]) for r in _panel_rows(loaded, "gitaudit-security",
                                                               "New client addresses per user")}
    assert {u for u, a in new if a.startswith("203.0.113")} == {"bob", "erin", "heidi"}
    burst = [r for r in _panel_rows(loaded, "gitaudit-security", "Anomalies by rule") if r["rule"] == "clone-burst"]
    assert burst[0]["users"] >= 1


def test_redactions_split_the_rule_list(loaded):
    """Redaction counts are per rule id taken from the JSON list in audit.redacted.rules."""
    rules = {r["rule"] for r in _panel_rows(loaded, "gitaudit-security", "Redactions by rule")}
    assert rules <= set(sample_data.REDACTION_RULES) and rules


def test_integrity_windows_show_sealed_verified_and_unsealed(loaded):
    """Hourly windows: the failed globex verification is 'mismatch'; windows after initech's sealer stopped are 'unsealed'."""
    rows = _panel_rows(loaded, "gitaudit-compliance", "Integrity status per window")
    assert len(rows) == 72  # 24 hourly windows x 3 organizations, all with events
    status = Counter(r["status"] for r in rows)
    # verified: 4 verifications x 3 organizations, less the mismatch; unsealed: initech 20:00-23:00
    # plus the 23:00 window of acme and globex, whose seal is recorded after the range ends
    assert status == {"mismatch": 1, "verified": 11, "unsealed": 6, "sealed": 54}
    (bad,) = [r for r in rows if r["status"] == "mismatch"]
    assert bad["organization"] == "globex" and bad["window_start"].hour == 6
    unsealed = sorted((r["organization"], r["window_start"].hour) for r in rows if r["status"] == "unsealed")
    assert unsealed == [("acme", 23), ("globex", 23), ("initech", 20), ("initech", 21), ("initech", 22),
                        ("initech", 23)]
    (sealed,) = _panel_rows(loaded, "gitaudit-compliance", "Windows sealed")
    assert sealed["sealed_windows"] == 23 + 23 + 20  # acme and globex 23:00 seals fall after the range


def test_gdpr_requests_and_completion_time(loaded):
    """Eight requests: six completed with a completion time in hours, one failed, one still open."""
    rows = _panel_rows(loaded, "gitaudit-compliance", "GDPR requests")
    assert len(rows) == 8
    by_status = Counter(r["status"] for r in rows)
    assert by_status == {"completed": 6, "failed": 1, "open": 1}
    assert all(1 <= r["completion_hours"] <= 12 for r in rows if r["status"] == "completed")
    assert all(r["completion_hours"] is None for r in rows if r["status"] == "open")


def test_severity_panel_levels(loaded):
    """Levels are bucketed by SeverityNumber: the FATAL destination-down record shows as 'fatal'."""
    rows = _panel_rows(loaded, "gitaudit-overview", "Events by severity")
    levels = Counter()
    for r in rows:
        levels[r["level"]] += r["events"]
    expected = Counter()
    for rec in sample_data.sample_records(seed=11):
        if sample_data.RANGE[0] <= rec.time_unix_nano <= sample_data.RANGE[1]:
            expected[("trace", "debug", "info", "warn", "error", "fatal")[(rec.severity_number - 1) // 4]] += 1
    assert levels == expected and levels["fatal"] == 1


def test_user_filter_narrows_every_panel(loaded):
    """Selecting one user leaves only that user's rows in the top-users table."""
    variables = _all_vars(loaded) | {"user": macros.Variable(["carol"])}
    rows = _panel_rows(loaded, "gitaudit-overview", "Top users", variables)
    assert [r["user"] for r in rows] == ["carol"]


# ---- macro expansion (the plugin's own examples) ----------------------------------------

_PLUGIN_RANGE = macros.TimeRange(1415792726371, 1447328726371)  # 2014-11-12T11:45:26.371Z .. 2015-11-12


def test_time_macros_expand_as_the_plugin_does():
    """$__timeFilter / _ms / $__fromTime / $__toTime / $__dateFilter give the plugin's exact text."""
    exp = lambda s: macros.expand(s, _PLUGIN_RANGE)  # noqa: E731
    assert exp("$__timeFilter(time)") == "time >= toDateTime(1415792726) AND time <= toDateTime(1447328726)"
    assert exp("$__timeFilter_ms(time)") == ("time >= fromUnixTimestamp64Milli(1415792726371) AND "
                                             "time <= fromUnixTimestamp64Milli(1447328726371)")
    assert exp("$__fromTime AND $__toTime") == "toDateTime(1415792726) AND toDateTime(1447328726)"
    assert exp("$__fromTime_ms") == "fromUnixTimestamp64Milli(1415792726371)"
    assert exp("$__dateFilter(d)") == "d >= toDate('2014-11-12') AND d <= toDate('2015-11-12')"
    assert exp("$__dt(d, t)") == ("(d >= toDate('2014-11-12') AND d <= toDate('2015-11-12')) AND "
                                  "(t >= toDateTime(1415792726) AND t <= toDateTime(1447328726))")


def test_interval_macros():
    """$__timeInterval uses the panel interval in whole seconds (at least 1); $__interval_s likewise."""
    assert (macros.expand("$__timeInterval(col)", _PLUGIN_RANGE, interval_ms=20_000)
            == "toStartOfInterval(toDateTime(col), INTERVAL 20 second)")
    assert macros.expand("$__interval_s", _PLUGIN_RANGE, interval_ms=500) == "1"
    assert (macros.expand("$__timeInterval_ms(c)", _PLUGIN_RANGE, interval_ms=250)
            == "toStartOfInterval(toDateTime64(c, 3), INTERVAL 250 millisecond)")
    assert macros.expand("$__interval $__interval_ms", _PLUGIN_RANGE, interval_ms=60_000) == "1m 60000"


def test_macro_arguments_parse_like_sqlutil():
    """Nested parentheses stay in one argument; args only when '(' follows at once; a missing ')' is an error."""
    assert (macros.expand("$__timeFilter(toDateTime(a, 'UTC'))", _PLUGIN_RANGE)
            == "toDateTime(a, 'UTC') >= toDateTime(1415792726) AND toDateTime(a, 'UTC') <= toDateTime(1447328726)")
    assert macros.expand("x >= $__fromTime AND f(1)", _PLUGIN_RANGE) == "x >= toDateTime(1415792726) AND f(1)"
    with pytest.raises(macros.MacroError):
        macros.expand("$__timeFilter(a", _PLUGIN_RANGE)
    with pytest.raises(macros.MacroError):
        macros.expand("$__timeFilter(a, b)", _PLUGIN_RANGE)


def test_conditional_all_and_multi_value_quoting():
    """All (or empty) turns the condition into 1=1; a selection keeps it with values as 'a','b'."""
    sql = "WHERE $__conditionalAll(OrgId IN (${org}), $org) AND $__conditionalAll(f(x, y) = 1, ${user})"
    all_vars = {"org": macros.Variable.all(["a", "b"]), "user": macros.Variable("")}
    assert macros.expand(sql, _PLUGIN_RANGE, variables=all_vars) == "WHERE 1=1 AND 1=1"
    some = {"org": macros.Variable(["a", "b"]), "user": macros.Variable("u1")}
    assert macros.expand(sql, _PLUGIN_RANGE, variables=some) == "WHERE OrgId IN ('a','b') AND f(x, y) = 1"
    # outside $__conditionalAll, "All" expands to every option; a single string value is not quoted
    assert macros.expand("IN (${org})", _PLUGIN_RANGE, variables=all_vars) == "IN ('a','b')"
    assert macros.expand("x = $v", _PLUGIN_RANGE, variables={"v": macros.Variable("raw")}) == "x = raw"
    assert macros.expand("${org:csv}", _PLUGIN_RANGE, variables=some) == "a,b"
    assert macros.expand("$nosuchvar", _PLUGIN_RANGE) == "$nosuchvar"
