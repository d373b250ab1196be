"""Conflict resolution events: a real git conflict resolved through the real anthropic client and the stand-in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
import wrapt

from gitaudit.instrumentation import audit_context, ensure_trace
from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.anthropic_instrumentor import AnthropicInstrumentor
from gitaudit.instrumentation.claude_standin import CannedResponse, ClaudeStandIn
from gitaudit.instrumentation.conflicts import emit_conflicts
from gitaudit.instrumentation.demo_resolver import extract_merged, resolve_command, resolve_conflicts
from gitaudit.instrumentation.resolution import (
    ValidationResult,
    conflict_resolved,
    resolving_conflict,
)

MODEL = "claude-haiku-4-5"  # $1 in, $5 out, $0.10 cache read, $1.25 cache write per MTok
BASE = "def greet(name):\n    return 'hello ' + name\n\n\ndef version():\n    return 1\n"
OURS = BASE.replace("'hello '", "'Hello, '")
THEIRS = BASE.replace("'hello ' + name", "'hello ' + name.strip()")
MERGED = "def greet(name):\n    return 'Hello, ' + name\n    return 'hello ' + name.strip()\n\n\ndef version():\n    return 1\n"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def conflicted_repo(tmp_path: Path) -> Path:
    """A real repository stopped by a merge with one both_modified conflict in app.py."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text(BASE)
    _git(repo, "add", "app.py")
    _git(repo, "commit", "-q", "-m", "base")
    _git(repo, "checkout", "-q", "-b", "feature")
    (repo / "app.py").write_text(THEIRS)
    _git(repo, "commit", "-q", "-am", "strip names")
    _git(repo, "checkout", "-q", "main")
    (repo / "app.py").write_text(OURS)
    _git(repo, "commit", "-q", "-am", "capitalize")
    merge = subprocess.run(["git", "-C", str(repo), "merge", "feature"], capture_output=True, text=True)
    assert merge.returncode == 1 and "<<<<<<<" in (repo / "app.py").read_text()
    return repo


@pytest.fixture
def standin() -> Iterator[ClaudeStandIn]:
    """The stand-in Messages API on loopback."""
    with ClaudeStandIn() as server:
        yield server


@pytest.fixture
def instrumented(audit_events: Any) -> Iterator[None]:
    """The anthropic instrumentor, installed for the test and removed after it."""
    inst = AnthropicInstrumentor()
    inst.instrument()
    yield
    inst.uninstrument()


def _client(server: ClaudeStandIn) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="test-key-not-secret", max_retries=0)


def _attrs(record: Any) -> dict:
    return dict(record.log_record.attributes)


def test_resolution_flow_links_detected_request_and_resolved(conflicted_repo, standin, instrumented,
                                                             audit_events) -> None:
    """detected -> claude.request -> resolved share one trace and job id; the resolution links both."""
    standin.enqueue(CannedResponse(text=MERGED, input_tokens=400, output_tokens=60,
                                   cache_read_input_tokens=1000, cache_creation_input_tokens=0))
    with audit_context(job_id="job-42", user_id="merge-bot"), ensure_trace("merge-job") as span_ctx:
        detected_uids = emit_conflicts(conflicted_repo, operation="merge")
        results = resolve_conflicts(conflicted_repo, client=_client(standin), model=MODEL, job_id="job-42",
                                    detected_uids={"app.py": detected_uids[0]})

    assert [(r.path, r.resolved) for r in results] == [("app.py", True)]
    assert (conflicted_repo / "app.py").read_text() == MERGED
    assert _git(conflicted_repo, "diff", "--name-only", "--diff-filter=U") == ""  # staged, no longer unmerged

    detected = audit_events.one(sc.EventName.CONFLICT_DETECTED)
    request = audit_events.one(sc.EventName.CLAUDE_REQUEST)
    resolved = audit_events.one(sc.EventName.CONFLICT_RESOLVED)
    for record in (detected, request, resolved):
        assert record.log_record.trace_id == span_ctx.trace_id
        assert _attrs(record)[sc.AUDIT_JOB_ID] == "job-42"
    ra, qa = _attrs(resolved), _attrs(request)
    assert ra[sc.CONFLICT_DETECTED_UID] == detected_uids[0] == _attrs(detected)[sc.LOG_RECORD_UID]
    assert list(ra[sc.CONFLICT_CLAUDE_REQUEST_UIDS]) == [qa[sc.LOG_RECORD_UID]]
    assert ra[sc.CONFLICT_CLAUDE_REQUEST_COUNT] == 1
    assert ra[sc.CONFLICT_FILE_PATH] == "app.py"
    assert ra[sc.CONFLICT_TYPE] == "both_modified"
    assert (ra[sc.CONFLICT_HUNKS], ra[sc.CONFLICT_LINES]) == (1, 2)
    assert ra[sc.CONFLICT_RESOLUTION_METHOD] == "claude"
    assert ra[sc.GEN_AI_REQUEST_MODEL] == MODEL
    assert ra[sc.GEN_AI_USAGE_INPUT_TOKENS] == qa[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1400
    assert ra[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == qa[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 60
    assert ra[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1000
    assert ra[sc.GEN_AI_USAGE_COST_USD] == qa[sc.GEN_AI_USAGE_COST_USD] == 0.0008  # (400 + 100 + 300) / 1e6
    assert ra[sc.CONFLICT_VALIDATION_PASSED] is True
    assert list(ra[sc.CONFLICT_VALIDATION_CHECKS]) == ["no_conflict_markers", "git_add"]
    assert ra[sc.AUDIT_OUTCOME] == "success" and ra[sc.AUDIT_DURATION_MS] > 0
    assert ra[sc.USER_ID] == "merge-bot"
    assert audit_events.named(sc.EventName.VALIDATION_FAILED) == []
    # the conflicted file went to the API inside the prompt
    assert "<<<<<<<" in standin.requests[0].body["messages"][0]["content"]


def test_rejected_resolution_emits_validation_failed(conflicted_repo, standin, instrumented, audit_events) -> None:
    """An answer still holding markers is rejected: validation.failed, resolved=failure, file left conflicted."""
    before = (conflicted_repo / "app.py").read_text()
    standin.enqueue(CannedResponse(text=before))  # echoes the conflicted file back
    with ensure_trace("merge-job") as span_ctx:
        results = resolve_conflicts(conflicted_repo, client=_client(standin), model=MODEL, job_id="job-7")
    assert results[0].resolved is False
    assert (conflicted_repo / "app.py").read_text() == before
    assert _git(conflicted_repo, "diff", "--name-only", "--diff-filter=U").strip() == "app.py"

    failed = audit_events.one(sc.EventName.VALIDATION_FAILED)
    resolved = audit_events.one(sc.EventName.CONFLICT_RESOLVED)
    fa, ra = _attrs(failed), _attrs(resolved)
    assert fa[sc.CONFLICT_RESOLUTION_UID] == ra[sc.LOG_RECORD_UID] == results[0].resolution_uid
    assert fa[sc.CONFLICT_VALIDATION_FAILURE_REASON] == "conflict markers left in the answer"
    assert list(fa[sc.CONFLICT_VALIDATION_CHECKS]) == ["no_conflict_markers"]
    assert (fa[sc.AUDIT_OUTCOME], fa[sc.ERROR_TYPE], fa[sc.AUDIT_JOB_ID]) == ("denied", "validation_failed", "job-7")
    assert (ra[sc.AUDIT_OUTCOME], ra[sc.ERROR_TYPE]) == ("failure", "validation_failed")
    assert ra[sc.CONFLICT_VALIDATION_PASSED] is False
    assert failed.log_record.trace_id == resolved.log_record.trace_id == span_ctx.trace_id


def test_check_command_failure_restores_the_file(conflicted_repo, standin, instrumented, audit_events) -> None:
    """A failing check command rejects the merge, names the exit code, and puts the conflict back."""
    before = (conflicted_repo / "app.py").read_text()
    results = resolve_conflicts(conflicted_repo, client=_client(standin), model=MODEL,
                                check_command=[sys.executable, "-c", "import sys; sys.exit(3)", "{path}"])
    assert results[0].resolved is False
    assert (conflicted_repo / "app.py").read_text() == before
    fa = audit_events.attrs(sc.EventName.VALIDATION_FAILED)
    assert fa[sc.CONFLICT_VALIDATION_FAILURE_REASON] == "check command exited 3"
    assert list(fa[sc.CONFLICT_VALIDATION_CHECKS]) == ["no_conflict_markers", "check_command"]


def test_check_command_success(conflicted_repo, standin, instrumented, audit_events) -> None:
    """The default stand-in merge compiles, so a py_compile check passes and the file is staged."""
    results = resolve_conflicts(conflicted_repo, client=_client(standin), model=MODEL,
                                check_command=f"{sys.executable} -m py_compile {{path}}")
    assert results[0].resolved is True
    ra = audit_events.attrs(sc.EventName.CONFLICT_RESOLVED)
    assert list(ra[sc.CONFLICT_VALIDATION_CHECKS]) == ["no_conflict_markers", "check_command", "git_add"]


def test_claude_failure_fails_the_resolution(conflicted_repo, standin, instrumented, audit_events) -> None:
    """An overloaded API fails both events with overloaded_error; no tokens or cost are recorded for it."""
    standin.enqueue(CannedResponse.overloaded())
    with pytest.raises(anthropic.APIStatusError):
        resolve_conflicts(conflicted_repo, client=_client(standin), model=MODEL)
    ra, qa = audit_events.attrs(sc.EventName.CONFLICT_RESOLVED), audit_events.attrs(sc.EventName.CLAUDE_REQUEST)
    assert (ra[sc.AUDIT_OUTCOME], ra[sc.ERROR_TYPE]) == ("failure", "overloaded_error")
    assert qa[sc.ERROR_TYPE] == "overloaded_error"
    assert list(ra[sc.CONFLICT_CLAUDE_REQUEST_UIDS]) == [qa[sc.LOG_RECORD_UID]]
    assert sc.GEN_AI_USAGE_COST_USD not in ra and sc.GEN_AI_USAGE_INPUT_TOKENS not in ra


def test_requests_inside_a_resolution_are_summed(standin, instrumented, audit_events) -> None:
    """Two Claude calls in one resolving_conflict block add up; an unknown model makes the cost absent."""
    standin.enqueue(CannedResponse(input_tokens=10, output_tokens=20, cache_creation_input_tokens=5),
                    CannedResponse(input_tokens=30, output_tokens=40, cache_read_input_tokens=7))
    client = _client(standin)
    msgs = [{"role": "user", "content": "x"}]
    with resolving_conflict("a.txt", method="claude", hunks=1, lines=3) as res:
        client.messages.create(model=MODEL, max_tokens=10, messages=msgs)
        client.messages.create(model=MODEL, max_tokens=10, messages=msgs)
        res.validated(True, ["no_conflict_markers"])
    ra = audit_events.attrs(sc.EventName.CONFLICT_RESOLVED)
    assert ra[sc.GEN_AI_USAGE_INPUT_TOKENS] == 10 + 5 + 30 + 7
    assert ra[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 60
    assert (ra[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS], ra[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS]) == (7, 5)
    # (10*1 + 5*1.25 + 20*5) + (30*1 + 7*0.10 + 40*5) = 116.25 + 230.7 = 346.95 -> / 1e6
    assert ra[sc.GEN_AI_USAGE_COST_USD] == 0.00034695
    assert ra[sc.CONFLICT_CLAUDE_REQUEST_COUNT] == 2

    audit_events.clear()
    with resolving_conflict("b.txt", method="claude"):
        client.messages.create(model="claude-unpriced-1", max_tokens=10, messages=msgs)
    assert sc.GEN_AI_USAGE_COST_USD not in audit_events.attrs(sc.EventName.CONFLICT_RESOLVED)


def test_conflict_resolved_direct_call_records_every_field(audit_events) -> None:
    """conflict_resolved() puts every given field on the event; a failed validation makes it a failure."""
    uid = conflict_resolved(
        "src/x.py", method="ours", conflict_type="both_added", hunks=2, lines=9, model=None,
        validation=ValidationResult(False, ("no_conflict_markers", "pytest"), "pytest exited 1"),
        duration_ms=12.5, detected_uid="0190-detected", job_id="job-9", attributes={"vcs.repository.name": "x"},
    )
    a = audit_events.attrs(sc.EventName.CONFLICT_RESOLVED)
    assert a[sc.LOG_RECORD_UID] == uid
    assert (a[sc.CONFLICT_FILE_PATH], a[sc.CONFLICT_TYPE], a[sc.CONFLICT_HUNKS], a[sc.CONFLICT_LINES]) == \
        ("src/x.py", "both_added", 2, 9)
    assert (a[sc.CONFLICT_RESOLUTION_METHOD], a[sc.CONFLICT_DETECTED_UID], a[sc.AUDIT_JOB_ID]) == \
        ("ours", "0190-detected", "job-9")
    assert a[sc.CONFLICT_VALIDATION_PASSED] is False
    assert a[sc.CONFLICT_VALIDATION_FAILURE_REASON] == "pytest exited 1"
    assert (a[sc.AUDIT_OUTCOME], a[sc.ERROR_TYPE], a[sc.AUDIT_DURATION_MS]) == ("failure", "validation_failed", 12.5)
    assert a["vcs.repository.name"] == "x"
    assert sc.GEN_AI_USAGE_COST_USD not in a and sc.GEN_AI_REQUEST_MODEL not in a


def test_unknown_resolution_method_is_refused(audit_events) -> None:
    """A method outside manual/ours/theirs/tool/claude raises ValueError and emits nothing."""
    with pytest.raises(ValueError, match="resolution method"):
        conflict_resolved("a", method="magic")
    with pytest.raises(ValueError):
        with resolving_conflict("a", method="guess"):
            pass
    assert audit_events.records() == []


def test_exception_in_block_is_recorded_and_reraised(audit_events) -> None:
    """An exception escaping resolving_conflict marks the event failed with its class, and propagates."""
    with pytest.raises(KeyError):
        with resolving_conflict("a.txt", method="manual", job_id="job-1"):
            raise KeyError("x")
    a = audit_events.attrs(sc.EventName.CONFLICT_RESOLVED)
    assert (a[sc.AUDIT_OUTCOME], a[sc.ERROR_TYPE], a[sc.AUDIT_JOB_ID]) == ("failure", "KeyError", "job-1")


def test_demo_command_with_standin_emits_the_whole_chain(conflicted_repo, audit_events, capsys) -> None:
    """resolve_command(--standin --emit-detected) resolves offline and links detected -> request -> resolved."""
    resolve_command(conflicted_repo, standin=True, job_id="demo-1", emit_detected=True)
    assert capsys.readouterr().out == "app.py: resolved\n"
    assert (conflicted_repo / "app.py").read_text() == MERGED
    detected = audit_events.one(sc.EventName.CONFLICT_DETECTED)
    request = audit_events.one(sc.EventName.CLAUDE_REQUEST)
    resolved = audit_events.one(sc.EventName.CONFLICT_RESOLVED)
    assert len({r.log_record.trace_id for r in (detected, request, resolved)}) == 1
    assert {_attrs(r)[sc.AUDIT_JOB_ID] for r in (detected, request, resolved)} == {"demo-1"}
    assert _attrs(resolved)[sc.CONFLICT_DETECTED_UID] == _attrs(detected)[sc.LOG_RECORD_UID]
    assert not isinstance(anthropic.resources.messages.Messages.__dict__["create"], wrapt.FunctionWrapper)


def test_extract_merged_strips_one_code_fence() -> None:
    """A fenced answer gives the fenced content; an unfenced one is used verbatim."""
    assert extract_merged("```python\nx = 1\n```") == "x = 1\n"
    assert extract_merged("x = 1\n") == "x = 1\n"
