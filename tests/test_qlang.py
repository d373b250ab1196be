"""The search language: parser, errors, JSON filters, SQL compilation and results on a real chDB store."""

from __future__ import annotations

import re
import uuid

import pytest
from search_seed import ALL, BASE, NOV1, TRACE, row, seeded_database

from gitaudit.query.qlang import (MATCH_ALL, And, Filter, Not, Or, QuerySyntaxError, Text, from_filters, parse,
                                  resolve_field)
from gitaudit.query.qlang_sql import compile_where, like_escape, needle_tokens, text_pattern
from gitaudit.query.search import EventQuery, build_where, search_events

NOW = BASE + 5_000_000_000 + 30 * 60 * 1_000_000_000  # e5's time + 30 min


@pytest.fixture(scope="module")
def seeded(chdb_dsn):
    """A database with the ten seed events, shared by the module's read-only tests."""
    yield from seeded_database(chdb_dsn)


def _uids(store, query: str, **kw) -> list[str]:
    page = search_events(store, EventQuery(query=query, limit=100, now_ns=NOW, **kw))
    return sorted(e["uid"] for e in page.events)


def _but(*excluded: str) -> list[str]:
    return sorted(u for u in ALL if u not in excluded)


# --- parser ------------------------------------------------------------------------


def test_and_binds_tighter_than_or_and_parentheses_group():
    """`a b OR c` is (a AND b) OR c; parentheses override; AND keyword equals juxtaposition."""
    a, b, c = Text("a"), Text("b"), Text("c")
    assert parse("a b OR c") == Or((And((a, b)), c))
    assert parse("a AND b OR c") == parse("a b OR c")
    assert parse("a (b OR c)") == And((a, Or((b, c))))
    assert parse("-a NOT b") == And((Not(a), Not(b)))
    assert parse("") == MATCH_ALL and parse("   ") == MATCH_ALL


def test_key_value_aliases_and_attribute_names():
    """Aliases map to columns, other keys are attributes by full name."""
    f = parse("actor:alice")
    assert isinstance(f, Filter) and f.field.column == "UserId" and f.value == "alice"
    assert parse("user:alice") == f
    assert parse("action:git.push").field.column == parse("event:git.push").field.column == "EventName"
    f = parse("vcs.ref.head.name:main")
    assert f.field.column is None and f.field.attr == "vcs.ref.head.name" and f.op == "eq"
    assert parse("trace:ABCDEF").value == "abcdef"
    assert resolve_field("@timestamp").kind == "time"


def test_quoted_values_and_phrases_with_escapes():
    """Quotes make values and phrases literal; \\" and \\\\ escape inside them."""
    assert parse('"force push"') == Text("force push")
    assert parse(r'"say \"hi\" \\ ok"') == Text('say "hi" \\ ok')
    f = parse('repo:"org/my app"')
    assert f.value == "org/my app" and f.op == "eq"
    assert parse('note:""').value == ""
    assert parse('action:"git.*"').op == "eq"  # quoted: no wildcard


def test_wildcards_prefix_contains_glob_and_exists():
    """`x*` is a prefix, `*x*` contains, other `*` patterns glob, a lone `*` means exists."""
    assert parse("action:git.*").op == "prefix"
    assert parse("repo:*lib*").op == "contains"
    assert parse("repo:acme/*-svc").op == "glob"
    assert parse("note:*").op == "exists"
    assert parse("exists:note") == Filter(resolve_field("note"), "exists")
    assert parse("-exists:note") == Not(Filter(resolve_field("note"), "exists"))


def test_comparisons_ranges_numbers_and_times():
    """>, >=, <, <= and a..b parse numbers, severity names, dates (whole days) and relative times."""
    assert parse("duration_ms:>1000") == Filter(resolve_field("duration_ms"), "gt", 1000.0, numeric=True)
    assert parse("severity:>=WARN").value == 13.0
    assert parse("git.commit.count:>=3").numeric
    rng = parse("duration:10..20")
    assert [(n.op, n.value) for n in rng.nodes] == [("gte", 10.0), ("lte", 20.0)]
    assert parse("duration:*..20").op == "lte"
    day = parse("created:2026-11-01")
    assert [(n.op, n.value) for n in day.nodes] == [("gte", NOV1), ("lt", NOV1 + 86_400 * 10**9)]
    assert parse("created:>2026-11-01") == Filter(resolve_field("created"), "gte", NOV1 + 86_400 * 10**9)
    assert parse("created:>=-7d", now_ns=NOV1).value == NOV1 - 7 * 86_400 * 10**9
    assert parse("@timestamp:<now", now_ns=123).value == 123
    assert parse("created:<=2026-11-01T00:00:00.000000001Z").value == NOV1 + 1


@pytest.mark.parametrize("query,position,needle", [
    ("action:git.push actor:", 22, "expected a value after 'actor:'"),
    ("actor: alice", 6, "expected a value after 'actor:'"),
    ("duration_ms:>", 13, "expected a value after 'duration_ms:>'"),
    ("foo (bar", 8, "expected ')' to close the '(' at position 4"),
    ("foo )", 4, "unexpected ')'"),
    ('x "abc', 6, "expected a closing '\"'"),
    ("created:>=yesterday", 10, "expected a time after 'created:>='"),
    ("duration:>abc", 10, "expected a number after 'duration:>'"),
    ("a OR", 4, "expected a term after 'OR'"),
    ("a OR OR b", 5, "found 'OR'"),
    ("NOT", 3, "expected a term after 'NOT'"),
    ("a -", 3, "expected a term after '-'"),
    ("exists:", 7, "expected an attribute name after 'exists:'"),
    ("()", 1, "expected a term after '('"),
    ("x:..", 2, "before or after '..'"),
    ("bad$key:1", 0, "invalid field name"),
    ("created:2026-11-01..soon", 20, "expected a time"),
    ("action:git.* duration:1*", 22, "wildcards need a text field"),
    ("git.commit.count:10..3", 17, "empty range in 'git.commit.count:': 10 is after 3"),
    ("created:2026-11-03..2026-11-01", 8, "empty range"),
])
def test_errors_point_at_the_position_and_say_what_was_expected(query, position, needle):
    """Every syntax error carries the 0-based position and names what was expected there."""
    with pytest.raises(QuerySyntaxError) as info:
        parse(query)
    assert info.value.position == position
    assert needle in str(info.value)
    assert str(info.value).startswith(f"position {position}: ")
    assert isinstance(info.value, ValueError)


def test_query_size_limits_are_errors_not_hangs():
    """Overlong queries, too many terms and deep nesting are clear errors."""
    with pytest.raises(QuerySyntaxError, match="longer than"):
        parse("a" * 5000)
    with pytest.raises(QuerySyntaxError, match="more than 200 terms"):
        parse(" ".join(["a"] * 201))
    with pytest.raises(QuerySyntaxError, match="nested deeper"):
        parse("(" * 40 + "a" + ")" * 40)


def test_json_filters_compile_to_the_same_ast_as_the_language():
    """Structured filters {field, op, value} build exactly the AST the parser builds."""
    filters = [{"field": "action", "op": "eq", "value": "git.push"},
               {"field": "git.commit.count", "op": "gte", "value": 3},
               {"field": "created", "op": "lt", "value": "2026-11-01"},
               {"field": "note", "op": "not_exists"},
               {"field": "repo", "op": "prefix", "value": "acme/"},
               {"field": "outcome", "op": "ne", "value": "success"}]
    query = "action:git.push git.commit.count:>=3 created:<2026-11-01 -exists:note repo:acme/* -outcome:success"
    assert from_filters(filters, NOW) == parse(query, NOW)
    assert from_filters([], NOW) == MATCH_ALL


@pytest.mark.parametrize("filters,needle", [
    ([{"field": "", "op": "eq", "value": "x"}], "filters[0].field"),
    ([{"field": "a", "op": "like", "value": "x"}], "unknown operator"),
    ([{"field": "a", "op": "eq"}, {"field": "duration_ms", "op": "gt", "value": "fast"}], "filters[0]"),
    ([{"field": "a", "op": "eq", "value": "x"}, {"field": "duration_ms", "op": "gt", "value": "fast"}],
     "filters[1]: expected a number"),
])
def test_json_filter_errors_name_the_filter(filters, needle):
    """A bad structured filter is a QuerySyntaxError naming filters[i]."""
    with pytest.raises(QuerySyntaxError, match=re.escape(needle)):
        from_filters(filters, NOW)


# --- SQL compilation -------------------------------------------------------------


def test_needle_tokens_are_every_ascii_run_unless_a_wildcard_may_cut_it():
    """Words match whole, so each ASCII run prefilters; runs touching a `*` and non-ASCII runs do not."""
    assert needle_tokens("push rejected: non-fast-forward") == ["push", "rejected", "non", "fast", "forward"]
    assert needle_tokens(" Force PUSH ") == ["force", "push"]
    assert needle_tokens("ush") == ["ush"]
    assert needle_tokens("*ush", wildcard=True) == []
    assert needle_tokens("push*", wildcard=True) == []
    assert needle_tokens("*a-b-c*", wildcard=True) == ["b"]
    assert needle_tokens("a-b*c-d", wildcard=True) == ["a", "d"]
    assert needle_tokens("a straße b") == ["a", "b"]  # non-ASCII: the index lower() folds ASCII only
    assert needle_tokens("/x/ /x/") == ["x"]
    assert needle_tokens("*x*", wildcard=False) == ["x"]  # quoted: '*' is a literal separator
    # identifier tokens (8+ hex digits) are not in the attribute index, so they never prefilter
    assert needle_tokens("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 by bob") == ["commit", "by", "bob"]
    assert needle_tokens("DEADBEEF-1234") == ["1234"]
    assert needle_tokens("deadbeefx 1234567") == ["deadbeefx", "1234567"]
    assert like_escape(r"a_b%c\d*") == r"a\_b\%c\\d%"


def test_text_pattern_escapes_every_ascii_symbol_and_bounds_words():
    """The RE2 check writes ASCII symbols as \\x{hh} and adds boundaries only next to word characters."""
    sep = r"[\x{00}-\x{2F}\x{3A}-\x{40}\x{5B}-\x{60}\x{7B}-\x{7F}]"
    assert text_pattern("a.b") == rf"(?is)(?:^|{sep})a\x{{2E}}b(?:$|{sep})"
    assert text_pattern("%") == r"(?is)\x{25}"
    assert text_pattern("p*h", wildcard=True) == rf"(?is)(?:^|{sep})p.*h(?:$|{sep})"
    assert text_pattern("***", wildcard=True) is None
    assert text_pattern("*x", wildcard=True) == rf"(?is)x(?:$|{sep})"


INJECTIONS = ["' OR 1=1 --", "\\", "{x:String}", "`otel_logs`", "; DROP TABLE otel_logs", "\\' OR '1'='1",
              "'; SELECT * FROM system.tables --", "%", "_", "\x00"]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_user_input_never_reaches_sql_text(evil):
    """Values and attribute keys from any term are bound parameters, never part of the SQL text."""
    node = from_filters([
        {"field": "actor", "value": evil}, {"field": evil, "value": evil}, {"field": evil, "op": "exists"},
        {"field": evil, "op": "prefix", "value": evil}, {"field": evil, "op": "contains", "value": evil},
        {"field": evil, "op": "glob", "value": evil}, {"field": evil, "op": "gt", "value": evil}], NOW)
    sql, params = compile_where(node)
    for fragment in (evil, "DROP", "1=1", "system.tables"):
        if fragment.strip("\\%_\x00"):
            assert fragment not in sql
    assert evil in params.values()
    assert re.fullmatch(r"[A-Za-z0-9_(){}:,.<>=!' \[\]\-]+", sql.replace("->", "")), sql


# --- results on a real store ---------------------------------------------------------


@pytest.mark.parametrize("query,expected", [
    ("action:git.push", ["e0", "e1", "e6", "e7"]),
    ("event:git.push actor:alice", ["e0"]),
    ("-action:git.push", _but("e0", "e1", "e6", "e7")),
    ("NOT action:git.push", _but("e0", "e1", "e6", "e7")),
    ("action:git.push OR action:git.fetch", ["e0", "e1", "e2", "e6", "e7"]),
    ("actor:alice action:git.fetch OR actor:bob", ["e1", "e2"]),
    ("actor:alice (action:git.fetch OR action:git.push)", ["e0", "e2"]),
    ("org:globex", ["e3", "e7"]),
    ("repo:acme/lib", ["e1"]),
    ("outcome:failure", ["e1"]),
    ("-outcome:success", ["e1", "e6", "e8"]),
    ("uid:e5", ["e5"]),
    (f"trace:{TRACE.upper()}", ["e8"]),
    ("service:scanner", ["e8"]),
    ("severity:>=WARN", ["e1", "e4", "e6"]),
    ("severity:13", ["e4", "e6"]),
    ("duration_ms:>1000", ["e1", "e3"]),
    ("duration:10..300", ["e0", "e2"]),
    ("duration_ms:<100", ["e0"]),  # events without a duration are not "0 ms"
    ("git.commit.count:>=3", ["e0", "e1"]),
    ("git.commit.count:>5", ["e1"]),
    ("-git.commit.count:>=3", _but("e0", "e1")),  # a true complement: includes events lacking it
    ("git.commit.count:3", ["e0"]),
    ("created:>=2026-11-01", _but("e0", "e1")),
    ("created:<2026-11-01", ["e0", "e1"]),
    ("created:2026-10-31", ["e0", "e1"]),
    ("created:>2026-10-31", _but("e0", "e1")),
    ("created:2026-10-31..2026-11-01", ALL),
    ("@timestamp:<=2026-11-01T00:00:00Z", ["e0", "e1", "e2"]),
    ("created:>=-30m", ["e5", "e6", "e7", "e8", "e9"]),
    ("created:>2026-11-01T00:00:00.000000001Z created:<2026-11-01T00:00:02Z", ["e3"]),
    ("vcs.ref.head.name:main", ["e0"]),
    ("vcs.ref.head.name:feat*", ["e1"]),
    ("vcs.ref.head.name:*x", ["e1"]),
    ("repo:*lib*", ["e1"]),
    ("repo:acme/*", ["e0", "e1", "e2", "e4", "e6", "e9"]),
    ("action:git.*", ["e0", "e1", "e2", "e3", "e6", "e7", "e9"]),
    ("action:git.p?sh", []),  # '?' is literal; only '*' is a wildcard
    ("exists:git.commit.count", ["e0", "e1"]),
    ("exists:note", ["e3"]),
    ("note:*", ["e3"]),
    ('note:""', ["e3"]),  # present and empty
    ('-note:""', _but("e3")),
    ("-exists:note", _but("e3")),
    ('actor:""', []),  # user.id missing on e8 is not an empty user.id
    ("-exists:actor", ["e8"]),
    ("exists:repo", _but("e5", "e8")),
    ('"force push"', ["e9"]),
    ("FoRcE", ["e9"]),
    ("50%", ["e3"]),
    ("%", ["e3"]),
    ("a_b", ["e6"]),
    ("_", ["e3", "e6"]),
    ('"\\"quoted\\""', ["e5"]),
    ("O'Brien", ["e5"]),
    ("o'brien's", ["e5"]),
    ("foo/bar", ["e8"]),
    ('"C:\\\\temp\\\\x"', ["e6"]),
    ("\\temp", ["e6"]),
    ("straße", ["e7"]),
    ("ünïcode", ["e7"]),
    ("ärger", ["e7"]),
    ("zoë", ["e7"]),  # attribute value only
    ("claude-x", ["e5"]),
    ('"rejected: non-fast"', ["e1"]),
    ('"REJECTED: NON-FAST-"', ["e1"]),
    ('" to "', ["e9"]),
    ("pushed main", ["e0"]),
    ('"secret.leak"', ["e8"]),
    ("push", ["e1", "e9"]),  # whole words: "pushed" (e0) is another word
    ("push*", ["e0", "e1", "e9"]),
    ("*ushed", ["e0"]),
    ("*ush*", ["e0", "e1", "e9"]),  # a plain substring
    ("p*h", ["e1", "e5", "e6", "e9"]),  # push, patch, path, PUSH
    ("ejected", []),
    ("*ejected*", ["e1"]),
    ("fetch", []),
    ("fetch*", ["e2"]),
    ("50", ["e3"]),
    ("objects", ["e3"]),  # '_' separates words, as in the index tokenizer
    ('"push*"', []),  # quoted: '*' is literal
    ("*", ALL),
])
def test_every_operator_returns_exactly_the_matching_events(seeded, query, expected):
    """Each operator of the language selects exactly the expected seeded events."""
    assert _uids(seeded, query) == expected


def test_language_ands_with_shortcut_filters_and_org_scope(seeded):
    """The query ANDs with shortcut filters and with allowed_orgs, all in SQL."""
    q = EventQuery(query="action:git.push", users=["alice", "frank"], limit=100)
    assert sorted(e["uid"] for e in search_events(seeded, q).events) == ["e0", "e7"]
    assert [e["uid"] for e in search_events(seeded, q, allowed_orgs=["globex"]).events] == ["e7"]
    assert search_events(seeded, q, allowed_orgs=[]).events == []


@pytest.mark.parametrize("evil", INJECTIONS)
def test_injection_attempts_are_plain_values_on_the_store(seeded, evil):
    """Hostile strings in values, keys and free text run without error and match nothing extra."""
    filters = [{"field": "actor", "value": evil}]
    assert search_events(seeded, EventQuery(filters=filters, limit=100)).events == []
    assert search_events(seeded, EventQuery(filters=[{"field": evil, "op": "exists"}], limit=100)).events == []
    quoted = evil.replace("\\", "\\\\").replace('"', '\\"')
    got = _uids(seeded, f'actor:"{quoted}" OR vcs.ref.head.name:"{quoted}"')
    assert got == []
    text_hits = _uids(seeded, f'"{quoted}"')
    assert text_hits == {"%": ["e3"], "_": ["e3", "e6"], "\\": ["e6"]}.get(evil, [])
    assert seeded.count() == 10


def test_free_text_prefilter_uses_the_text_index_and_skips_granules(store):
    """EXPLAIN shows hasAllTokens answered by idx_body/idx_attr_values and granules skipped; results exact."""
    base = BASE
    rows = [row(f"r{i}", base + i, "git.fetch", f"routine fetch {i}", user__id=f"u{i % 50}",
                audit__organization__id="acme") for i in range(60_000)]
    rows.append(row("hit", base + 70_000, "git.push", "Push REJECTED: non-fast-forward by Bob",
                    audit__organization__id="acme"))
    rows.append(row("hit2", base + 70_001, "git.push", "x", note="was rejected: non-fast-forward",
                    audit__organization__id="acme"))
    for i in range(0, len(rows), 20_000):
        store.insert_rows(rows[i:i + 20_000])
    store.command(f"OPTIMIZE TABLE {store.table} FINAL")
    q = EventQuery(query='" REJECTED: non-fast"', limit=10)
    cond, params = build_where(q, None)
    assert "hasAllTokens(Body" in cond[0] and params["qp1"] == ["rejected", "non", "fast"]
    plan = "\n".join(r[0] for r in store.query(
        f"EXPLAIN indexes = 1 SELECT Uid FROM {store.table} WHERE {' AND '.join(cond)}", params))
    assert "__text_index_idx_body_hasAllTokens" in plan and "__text_index_idx_attr_values_hasAllTokens" in plan
    selected, total = map(int, re.findall(r"Granules: (\d+)/(\d+)", plan)[-1])
    assert total >= 7 and selected <= 2, plan
    assert sorted(e["uid"] for e in search_events(store, q).events) == ["hit", "hit2"]
    # identifier tokens are left out of idx_attr_values: an id needle scans instead, and still finds its event
    store.insert_rows([row("hex", base + 80_000, "git.push", "x", vcs__ref__head__revision="9FCEB02D0AE5",
                           note="sha=abcdef0123456789;seen", audit__organization__id="acme")])
    for needle in ("9fceb02d0ae5", "abcdef0123456789", '"sha=abcdef0123456789;seen"'):
        q3 = EventQuery(query=needle, limit=10)
        assert [e["uid"] for e in search_events(store, q3).events] == ["hex"], needle
    assert "hasAllTokens" not in build_where(EventQuery(query="9fceb02d0ae5"), None)[0][0]
    hits = store.query(f"SELECT Uid FROM {store.table} WHERE hasAllTokens(mapValues(LogAttributes), ['seen', 'sha'])")
    assert hits == [("hex",)]  # the other tokens of the value are indexed whole
    assert store.query(f"SELECT Uid FROM {store.table} WHERE hasAllTokens(mapValues(LogAttributes), "
                       "['abcdef0123456789'])") == []  # the id token itself is not
    # a word matches whole words only; a substring wildcard gets no prefilter and matches inside words
    assert search_events(store, EventQuery(query="ejected", limit=10)).events == []
    q2 = EventQuery(query="*ejected*", limit=10)
    assert "hasAllTokens" not in build_where(q2, None)[0][0]
    assert sorted(e["uid"] for e in search_events(store, q2).events) == ["hit", "hit2"]


def test_relative_times_use_one_now_per_query(seeded):
    """`created:>=-30m` is evaluated against the query's now_ns."""
    later = NOW + 10 * 60 * 1_000_000_000
    assert _uids(seeded, "created:>=-30m") == ["e5", "e6", "e7", "e8", "e9"]
    page = search_events(seeded, EventQuery(query="created:>=-30m", now_ns=later, limit=100))
    assert page.events == []


def test_random_uid_query_matches_nothing(seeded):
    """A uid that is not stored returns no events (and no error)."""
    assert _uids(seeded, f"uid:{uuid.uuid4()}") == []


def test_estimated_counts_are_exact_when_few_rows_are_left_else_a_marked_upper_bound(seeded, monkeypatch):
    """count=estimate counts exactly under EXACT_COUNT_BELOW rows to read, else returns the index's upper bound."""
    from gitaudit.query import search

    q = EventQuery(query="action:git.push", limit=1, count="estimate", now_ns=NOW)
    page = search_events(seeded, q)
    assert (page.count, page.count_is_estimate) == (4, False)
    monkeypatch.setattr(search, "EXACT_COUNT_BELOW", 0)
    page = search_events(seeded, q)
    assert page.count_is_estimate is True and page.count >= 4


def test_parse_time_takes_now_and_times_relative_to_now():
    """Time bounds of the API and CLI accept now and -<n><s|m|h|d|w>, as the query language does."""
    from gitaudit.query.timefmt import parse_time

    now = 1_800_000_000 * 10**9
    assert parse_time("now", now) == now
    assert parse_time("-7d", now) == now - 7 * 86_400 * 10**9
    assert parse_time(" -24h ", now) == now - 86_400 * 10**9
    assert [parse_time(f"-1{u}", now) for u in "smw"] == [now - 10**9, now - 60 * 10**9, now - 7 * 86_400 * 10**9]
    assert parse_time("2026-11-01", now) == 1_793_491_200 * 10**9
    for bad in ("-7", "-7y", "+7d", "7d", "now-1d"):
        with pytest.raises(ValueError, match="relative to now"):
            parse_time(bad, now)
