"""A small merge-conflict resolver that asks Claude, validates, and records it all.

It is the example workload of ``make run``: given a work tree stopped by a
conflicted merge/rebase, for each conflicted text file (``both_modified`` or
``both_added`` with conflict markers) it

1. sends the file to Claude through the real ``anthropic.Anthropic`` client
   (instrumented by :class:`~.anthropic_instrumentor.AnthropicInstrumentor`, so
   each call is a ``claude.request`` event);
2. validates the answer: no conflict markers left (``no_conflict_markers``)
   and, optionally, a check command that must exit 0 (``check_command``,
   ``{path}`` in it is replaced by the file path);
3. writes it and ``git add``s it when valid, or restores the conflicted file;
4. records it with :func:`~.resolution.resolving_conflict`: one
   ``conflict.resolved`` event per file (tokens and cost summed from the Claude
   calls, ``conflict.detected.uid`` linked), ``validation.failed`` on rejection.

Where it talks to: ``base_url`` argument > ``ANTHROPIC_BASE_URL`` > the real API;
the key: ``api_key`` argument > ``ANTHROPIC_API_KEY``. Offline, pass
``--standin`` (CLI) to start :class:`~.claude_standin.ClaudeStandIn` on
loopback, whose answer is a deterministic merge of both sides. Against the real
API: ``export ANTHROPIC_API_KEY=...`` and drop ``--standin``.

CLI: ``python -m gitaudit.instrumentation.demo_resolver REPO [--standin]
[--model M] [--check "python -m py_compile {path}"] [--job-id J] [--emit-detected]``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from .context import audit_context
from .events import ensure_trace
from .resolution import ValidationResult, resolving_conflict

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = 8192
CHECK_TIMEOUT_S = 120

SYSTEM_PROMPT = (
    "You resolve git merge conflicts. Reply with the complete merged file content only: "
    "no conflict markers, no code fences, no commentary. Keep the intent of both sides."
)

_MARKER = re.compile(r"^(?:<{7}|>{7})(?: |$)|^={7}$|^\|{7}(?: |$)", re.M)
_FENCED = re.compile(r"\A\s*```[^\n]*\n(.*?)\n?```\s*\Z", re.S)
_RESOLVABLE = ("both_modified", "both_added")


@dataclass(frozen=True)
class FileResolution:
    """What happened to one conflicted file.

    Attributes:
        path: the file, relative to the repository root.
        resolved: the merged content was written and staged.
        validation: the validation result (None when Claude was not reached).
        resolution_uid: uid of the ``conflict.resolved`` event (None if skipped).
        skipped_reason: why the file was not attempted (unsupported conflict type).
    """

    path: str
    resolved: bool
    validation: ValidationResult | None = None
    resolution_uid: str | None = None
    skipped_reason: str | None = None


def build_prompt(path: str, content: str) -> str:
    """The user message for one file: the file inside a ``<conflicted_file>`` element."""
    return (f"Resolve every merge conflict in this file and return the whole merged file.\n"
            f'<conflicted_file path="{path}">\n{content}\n</conflicted_file>')


def extract_merged(text: str) -> str:
    """The file content in Claude's answer (one surrounding code fence removed)."""
    match = _FENCED.match(text)
    return match.group(1) + "\n" if match else text


def has_conflict_markers(content: str) -> bool:
    """True when a line is a conflict marker (``<<<<<<<``, ``=======``, ``|||||||``, ``>>>>>>>``)."""
    return bool(_MARKER.search(content))


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


def _run_check(repo: Path, path: str, check_command: str | Sequence[str]) -> tuple[bool, str | None]:
    argv = shlex.split(check_command) if isinstance(check_command, str) else list(check_command)
    argv = [a.replace("{path}", path) for a in argv]
    try:
        proc = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"check command could not run ({type(exc).__name__})"
    if proc.returncode != 0:
        return False, f"check command exited {proc.returncode}"
    return True, None


def _make_client(base_url: str | None, api_key: str | None) -> Any:
    import anthropic

    kwargs: dict[str, Any] = {}
    if base_url:
        kwargs["base_url"] = base_url
    if api_key:
        kwargs["api_key"] = api_key
    return anthropic.Anthropic(**kwargs)


def resolve_conflicts(
    repo: str | os.PathLike[str],
    *,
    client: Any = None,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str = DEFAULT_MODEL,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    check_command: str | Sequence[str] | None = None,
    job_id: str | None = None,
    detected_uids: Mapping[str, str] | None = None,
    emit_detected: bool = False,
) -> list[FileResolution]:
    """Resolve each conflicted file of the work tree at ``repo`` with Claude.

    Each ``conflict.resolved`` event carries the repository of ``repo``'s
    ``origin`` remote (``vcs.repository.*``, credentials removed), as its
    ``conflict.detected`` does, so a repository's timeline shows both.

    Args:
        repo: a work tree with unmerged paths.
        client: an ``anthropic.Anthropic`` to use (else one is made from
            ``base_url`` / ``api_key``, which default to the SDK's env vars).
        model / max_tokens: the Messages request.
        check_command: optional validation command (string or argv), run in
            the repository with ``{path}`` replaced; must exit 0.
        job_id: ``audit.job.id`` for every event of the run.
        detected_uids: file path -> ``log.record.uid`` of its ``conflict.detected``
            event, to link each resolution to its detection.
        emit_detected: emit the ``conflict.detected`` events here (via
            :func:`gitaudit.instrumentation.conflicts.emit_conflicts`) for
            files not in ``detected_uids``.

    Returns:
        One :class:`FileResolution` per conflicted file, in path order.

    Raises:
        gitaudit.instrumentation.git_runner.GitCommandError: ``repo`` is not a work tree.
        anthropic.APIError: a Claude call failed (after its retries); the
            ``conflict.resolved`` event of that file records the failure first.
    """
    from .conflicts import detect_conflicts, emit_conflicts

    root = Path(repo)
    client = client or _make_client(base_url, api_key)
    repository = repository_of(root)
    results: list[FileResolution] = []
    job_ctx = audit_context(job_id=job_id) if job_id else nullcontext()
    with job_ctx, ensure_trace("conflict.resolution.job"):
        conflicts = detect_conflicts(root)
        links = dict(detected_uids or {})
        missing = [c for c in conflicts if c.path not in links]
        if emit_detected and missing:
            links.update(zip([c.path for c in missing], emit_conflicts(root, conflicts=missing, operation="merge")))
        for c in conflicts:
            if c.type not in _RESOLVABLE or c.hunks == 0:
                results.append(FileResolution(c.path, False, skipped_reason=f"unsupported conflict type {c.type}"))
                continue
            results.append(_resolve_file(root, c, client=client, model=model, max_tokens=max_tokens,
                                         check_command=check_command, job_id=job_id,
                                         detected_uid=links.get(c.path), repository=repository))
    return results


def repository_of(root: Path) -> dict[str, str]:
    """``vcs.repository.*`` of the work tree's ``origin`` remote, as the git API records them ({} without one)."""
    from .git_api import Git
    from .git_urls import repository_attributes

    return repository_attributes(Git(root).remote_url("origin"))


def _resolve_file(root: Path, conflict: Any, *, client: Any, model: str, max_tokens: int,
                  check_command: str | Sequence[str] | None, job_id: str | None,
                  detected_uid: str | None, repository: Mapping[str, str]) -> FileResolution:
    file = root / conflict.path
    original = file.read_text(encoding="utf-8")
    with resolving_conflict(conflict.path, conflict_type=conflict.type, hunks=conflict.hunks,
                            lines=conflict.lines, method="claude", model=model,
                            detected_uid=detected_uid, job_id=job_id, attributes=repository) as res:
        try:
            message = client.messages.create(
                model=model, max_tokens=max_tokens, system=SYSTEM_PROMPT,
                messages=[{"role": "user", "content": build_prompt(conflict.path, original)}],
            )
        except Exception as exc:
            from .anthropic_instrumentor import error_type_of

            res.fail(error_type_of(exc)[0], "Claude request failed")
            raise
        text = "".join(b.text for b in message.content if getattr(b, "type", None) == "text")
        merged = extract_merged(text)
        checks = ["no_conflict_markers"]
        ok, reason = (not has_conflict_markers(merged)), None
        if not ok:
            reason = "conflict markers left in the answer"
        elif message.stop_reason == "max_tokens":
            ok, reason = False, "answer truncated at max_tokens"
        if ok:
            file.write_text(merged, encoding="utf-8")
            if check_command:
                checks.append("check_command")
                ok, reason = _run_check(root, conflict.path, check_command)
        if ok:
            added = _git(root, "add", "--", conflict.path)
            checks.append("git_add")
            if added.returncode != 0:
                ok, reason = False, f"git add exited {added.returncode}"
        if not ok:
            file.write_text(original, encoding="utf-8")
        res.validated(ok, checks, reason)
    return FileResolution(conflict.path, ok, res.validation, res.uid)


def resolve_command(
    repo: Annotated[Path, typer.Argument(help="work tree with a conflicted merge")] = Path("."),
    standin: bool = False,
    base_url: str | None = None,
    model: str = DEFAULT_MODEL,
    check: str | None = None,
    job_id: str | None = None,
    emit_detected: bool = False,
) -> None:
    """Resolve the conflicts in REPO with Claude and record audit events (typer-compatible).

    --standin starts the local Claude stand-in and uses it (no network, no key);
    otherwise the real API is used (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL).
    """
    from .anthropic_instrumentor import AnthropicInstrumentor
    from .claude_standin import ClaudeStandIn

    instrumentor = AnthropicInstrumentor()
    installed = not instrumentor.is_instrumented_by_opentelemetry
    if installed:
        instrumentor.instrument()
    server = ClaudeStandIn().start() if standin else None
    try:
        results = resolve_conflicts(
            repo,
            base_url=server.url if server else base_url,
            api_key="standin-no-key" if server else None,
            model=model, check_command=check, job_id=job_id, emit_detected=emit_detected,
        )
    finally:
        if server:
            server.stop()
        if installed:
            instrumentor.uninstrument()
    for r in results:
        state = "resolved" if r.resolved else (r.skipped_reason or (r.validation and r.validation.failure_reason))
        print(f"{r.path}: {state}")


__all__ = [
    "DEFAULT_MODEL",
    "FileResolution",
    "build_prompt",
    "extract_merged",
    "has_conflict_markers",
    "resolve_command",
    "resolve_conflicts",
]

if __name__ == "__main__":  # pragma: no cover
    from .configuration import configure

    configure(service_name="gitaudit-demo-resolver")
    typer.run(resolve_command)
