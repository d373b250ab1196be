"""Search over HTTP: the language in GET/POST, JSON filters, paging, counts, fields, injection, analyst views."""

from __future__ import annotations

import json

import httpx
import pytest
from search_seed import ALL, BASE, row, seeded_database

from gitaudit.query.api.app import create_app
from gitaudit.query.server import BackgroundServer
from gitaudit.query.settings import Settings


@pytest.fixture(scope="module")
def seeded(chdb_dsn):
    """A database with the ten seed events, shared by the module's read-only tests."""
    yield from seeded_database(chdb_dsn)


@pytest.fixture(scope="module")
def server(seeded):
    """A real gitaudit server over the seeded database."""
    with BackgroundServer(create_app(Settings(), seeded)) as srv:
        yield srv


def _get(srv, **params) -> httpx.Response:
    return httpx.get(f"{srv.url}/api/v1/events", params=params, timeout=30)


def _post(srv, body: dict) -> httpx.Response:
    return httpx.post(f"{srv.url}/api/v1/events/search", json=body, timeout=30)


def _uids(resp: httpx.Response) -> list[str]:
    """Seeded uids in the response (the audit.query events of the test's own earlier reads left out)."""
    assert resp.status_code == 200, resp.text
    return sorted(e["uid"] for e in resp.json()["events"] if not e["event_name"].startswith("audit."))


def test_get_takes_the_language_and_ands_it_with_shortcuts(server):
    """GET q= is the search language; shortcut parameters AND with it."""
    assert _uids(_get(server, q="action:git.push -outcome:failure")) == ["e0", "e6", "e7"]
    assert _uids(_get(server, q="action:git.push", user=["alice", "frank"])) == ["e0", "e7"]
    assert _uids(_get(server, q='"force push" OR repo:acme/lib')) == ["e1", "e9"]
    assert _uids(_get(server, text="actor:alice")) == []  # text= is literal free text
    assert _uids(_get(server, q="git.commit.count:>=3 created:<2026-11-01")) == ["e0", "e1"]


def test_post_search_takes_query_and_structured_filters(server):
    """POST /api/v1/events/search: query and filters AND; filters mean what the language means."""
    body = {"query": "org:acme", "filters": [{"field": "action", "op": "prefix", "value": "git."},
                                             {"field": "git.commit.count", "op": "gte", "value": 3}]}
    assert _uids(_post(server, body)) == ["e0", "e1"]
    assert _uids(_post(server, {"filters": [{"field": "note", "op": "eq", "value": ""}]})) == ["e3"]
    assert _uids(_post(server, {"filters": [{"field": "note", "op": "not_exists"}]})) == [u for u in ALL if u != "e3"]
    assert _uids(_post(server, {"filters": [{"field": "duration_ms", "op": "lt", "value": 100}]})) == ["e0"]
    assert _uids(_post(server, {"query": "action:git.push", "from": "2026-11-01", "order": "asc"})) == ["e6", "e7"]
    # Unix ns as a JSON number means what the same digits as a string mean
    nov1 = 1_793_491_200 * 10**9  # 2026-11-01T00:00:00Z
    as_number = _post(server, {"query": "action:git.push", "from": nov1, "to": nov1 + 400 * 86_400 * 10**9})
    assert _uids(as_number) == ["e6", "e7"] == _uids(_post(server, {"query": "action:git.push", "from": str(nov1)}))
    assert _post(server, {"from": -5}).status_code == 400 and _post(server, {"from": 2**70}).status_code == 400


@pytest.mark.parametrize("send,position,needle", [
    (lambda s: _get(s, q="action:git.push actor:"), 22, "expected a value after 'actor:'"),
    (lambda s: _post(s, {"query": "(actor:alice"}), 12, "expected ')'"),
    (lambda s: httpx.get(f"{s.url}/api/v1/events/export", params={"q": 'x "open'}), 7, "closing"),
])
def test_query_errors_are_400_with_message_and_position(server, send, position, needle):
    """A query that does not parse is a 400 whose body gives the message and the position."""
    resp = send(server)
    assert resp.status_code == 400
    body = resp.json()
    assert body["position"] == position and needle in body["detail"]
    assert body["detail"].startswith(f"position {position}: ")


@pytest.mark.parametrize("body,needle", [
    ({"filters": [{"field": "duration_ms", "op": "gt", "value": "slow"}]}, "filters[0]: expected a number"),
    ({"filters": [{"field": "x", "op": "like", "value": "a"}]}, "op"),
    ({"query": "a", "fields": ["nope"]}, "fields: unknown field"),
    ({"query": "a", "count": "maybe"}, "count"),
    ({"query": "a", "unknown": 1}, "unknown"),
    ({"limit": 0}, "limit"),
])
def test_bad_json_searches_are_400_naming_the_problem(server, body, needle):
    """Invalid JSON searches get a 400 that names the field, never a 500."""
    resp = _post(server, body)
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["detail"]


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_page_walk_over_equal_timestamps_with_the_language(store, order):
    """Nine matching events sharing one timestamp, 2 per page via GET and POST: each exactly once, in order."""
    ts = BASE + 100 * 1_000_000_000
    rows = [row(f"same-{i}", ts, "git.fetch", f"e{i}", audit__organization__id="acme") for i in range(9)]
    rows += [row(f"other-{i}", ts, "git.push", "x", audit__organization__id="acme") for i in range(5)]
    store.insert_rows(rows)
    with BackgroundServer(create_app(Settings(), store)) as srv:
        for via in ("get", "post"):
            seen, cursor, pages = [], None, 0
            while True:
                if via == "get":
                    more = {"cursor": cursor} if cursor else {}
                    resp = _get(srv, q="action:git.fetch", limit=2, order=order, **more)
                else:
                    resp = _post(srv, {"query": "action:git.fetch", "limit": 2, "order": order, "cursor": cursor})
                assert resp.status_code == 200, resp.text
                page = resp.json()
                seen += [e["uid"] for e in page["events"]]
                pages += 1
                cursor = page["next_cursor"]
                if not cursor:
                    break
            expected = sorted(f"same-{i}" for i in range(9))
            assert seen == (expected if order == "asc" else expected[::-1])
            assert pages == 5


def test_counts_exact_estimate_and_absent(server):
    """count=exact counts the whole result; estimate is exact for small results, else a marked upper bound."""
    page = _get(server, q="org:acme", limit=2, count="exact").json()
    assert (page["count"], page["count_is_estimate"]) == (8, False) and len(page["events"]) == 2
    page = _get(server, q="org:acme", limit=2, count="estimate").json()
    assert (page["count"], page["count_is_estimate"]) == (8, False)  # few rows to read: counted exactly
    page = _get(server, q="org:globex", limit=10, count="estimate").json()
    assert (page["count"], page["count_is_estimate"]) == (2, False)
    page = _post(server, {"query": "action:git.push", "limit": 1, "count": "exact"}).json()
    assert page["count"] == 4
    assert "count" not in _get(server, q="org:acme").json()


def test_field_selection_returns_only_the_selected_fields(server):
    """fields=uid,timestamp,event_name,attributes.user.id returns exactly those keys; missing attrs stay missing."""
    resp = _get(server, q="uid:e0 OR uid:e8", fields="uid,timestamp,event_name,attributes.user.id")
    events = {e["uid"]: e for e in resp.json()["events"]}
    assert events["e0"] == {"uid": "e0", "timestamp": "2026-10-31T23:59:58.000000000Z", "event_name": "git.push",
                            "attributes": {"user.id": "alice"}}
    assert events["e8"] == {"uid": "e8", "timestamp": "2026-11-01T00:00:06.000000000Z",
                            "event_name": "security.event"}
    body = _post(server, {"query": "uid:e5", "fields": ["body", "resource.service.name"]}).json()
    assert body["events"] == [{"body": 'Asked about O\'Brien\'s "quoted" patch', "resource": {"service.name": "svc"}}]
    assert _get(server, fields="uid,password").status_code == 400


EVIL = ["' OR 1=1 --", "\\", "{x:String}", "`otel_logs`", "; DROP TABLE otel_logs", "\\' OR '1'='1",
        "e0') OR ('1'='1"]


@pytest.mark.parametrize("evil", EVIL)
def test_injection_through_every_parameter_returns_no_error_and_no_rows(server, seeded, evil):
    """Hostile strings in every value parameter are values: 200 and no rows; in structured ones, a clean 400."""
    for name in ("event", "user", "org", "repo", "trace_id"):
        assert _uids(_get(server, **{name: evil})) == [], name
    assert _uids(_get(server, text=evil)) == (["e6"] if evil == "\\" else [])  # e6's body has a backslash
    quoted = evil.replace("\\", "\\\\").replace('"', '\\"')
    for query in (f'actor:"{quoted}"', f'vcs.ref.head.name:"{quoted}"', f'uid:"{quoted}" OR uid:"{quoted}"'):
        assert _uids(_get(server, q=query)) == [], query
        assert _uids(_post(server, {"query": query})) == [], query
    for f in ({"field": "actor", "value": evil}, {"field": evil, "value": evil}, {"field": evil, "op": "exists"},
              {"field": evil, "op": "prefix", "value": evil}, {"field": "created", "op": "exists"} | {"field": evil}):
        assert _uids(_post(server, {"filters": [f]})) == [], f
    for params in ({"cursor": evil}, {"fields": evil}, {"from": evil}, {"order": evil}, {"count": evil}):
        resp = _get(server, **params)
        assert resp.status_code == 400 and "Traceback" not in resp.text, params
    resp = httpx.get(f"{server.url}/api/v1/events/export", params={"q": f'actor:"{quoted}"', "format": "csv"})
    assert resp.status_code == 200 and resp.text.count("\r\n") == 1  # header only
    assert httpx.get(f"{server.url}/api/v1/events/{evil}").status_code in (404, 405)
    assert seeded.query(f"SELECT count() FROM {seeded.table} WHERE EventName NOT LIKE 'audit.%'") == [(10,)]
    assert seeded.query(f"EXISTS TABLE {seeded.table}") == [(1,)]


def test_openapi_describes_the_search_endpoints(server):
    """The OpenAPI schema builds and documents GET/POST search and export."""
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert "post" in spec["paths"]["/api/v1/events/search"]
    assert "get" in spec["paths"]["/api/v1/events/export"]
    assert "EventSearchQuery" in spec["components"]["schemas"]


# --- analyst views ------------------------------------------------------------------


def test_audit_logs_view_has_the_user_story_columns(seeded):
    """audit_logs exposes id, organization_id, user_id, action, resource_*, details JSON, ip, agent, request, time."""
    store = seeded
    cols, rows = store.query_columns(
        f"SELECT * FROM {store.qualified('audit_logs')} WHERE id IN ('e0', 'e5', 'e8') ORDER BY created_at")
    assert cols == ["id", "organization_id", "user_id", "action", "resource_type", "resource_id", "details",
                    "ip_address", "user_agent", "request_id", "created_at"]
    by_id = {r[0]: dict(zip(cols, r, strict=True)) for r in rows}
    e0 = by_id["e0"]
    assert (e0["organization_id"], e0["user_id"], e0["action"], e0["resource_type"], e0["resource_id"]) == (
        "acme", "alice", "git.push", "repository", "acme/app")
    assert (e0["ip_address"], e0["user_agent"], e0["request_id"]) == ("203.0.113.7", "git/2.47", "req-1")
    assert json.loads(e0["details"])["git.commit.count"] == "3"
    assert (by_id["e5"]["resource_type"], by_id["e5"]["resource_id"]) == ("ai_model", "claude-x")
    assert (by_id["e8"]["resource_type"], by_id["e8"]["resource_id"]) == ("security_event", "secret.leak")
    assert store.query(f"SELECT count() FROM {store.qualified('audit_logs')} WHERE action NOT LIKE 'audit.%'") == [
        (10,)]
    assert store.query(f"SELECT toUnixTimestamp64Nano(created_at) FROM {store.qualified('audit_logs')} "
                       "WHERE id = 'e0'") == [(BASE,)]


def test_git_operations_view_has_the_user_story_columns(seeded):
    """git_operations: one row per git.* event with type, url, branch, status, integer ms and error message."""
    store = seeded
    cols, rows = store.query_columns(f"SELECT * FROM {store.qualified('git_operations')} ORDER BY created_at")
    assert cols == ["id", "job_id", "operation_type", "repository_url", "branch", "status", "duration_ms",
                    "error_message", "created_at"]
    by_id = {r[0]: dict(zip(cols, r, strict=True)) for r in rows}
    assert sorted(by_id) == ["e0", "e1", "e2", "e3", "e6", "e7", "e9"]
    assert by_id["e0"] | {"created_at": None} == {
        "id": "e0", "job_id": "job-1", "operation_type": "push", "repository_url": "https://h.example/acme/app.git",
        "branch": "main", "status": "success", "duration_ms": 13, "error_message": "", "created_at": None}
    e1 = by_id["e1"]
    assert (e1["operation_type"], e1["repository_url"], e1["branch"], e1["status"], e1["duration_ms"],
            e1["error_message"]) == ("push", "acme/lib", "feature/x", "failure", 1500, "non-fast-forward")
    assert by_id["e2"]["operation_type"] == "fetch" and by_id["e2"]["duration_ms"] == 200
    assert store.query(f"SELECT type FROM system.columns WHERE database = {{db:String}} AND table = 'git_operations' "
                       "AND name = 'duration_ms'", {"db": store.database}) == [("Int64",)]


def test_an_inverted_time_range_is_refused_not_answered_empty(server):
    """from at or after to is a 400 naming the problem, on GET and POST search alike (as reports do)."""
    url = server.url
    for resp in (httpx.get(f"{url}/api/v1/events", params={"from": "now", "to": "-1d"}, timeout=30),
                 httpx.post(f"{url}/api/v1/events/search", json={"from": "now", "to": "-1d"}, timeout=30)):
        assert resp.status_code == 400 and "the time range is empty" in resp.json()["detail"]
