"""Run the real ``git`` binary and describe the run safely.

* :func:`run_git` runs git once, captures its output and measures it
  (:class:`GitResult`). It passes the active OpenTelemetry trace id (32 hex
  digits) to git as ``GIT_TRACE2_PARENT_SID``, so the trace2 events of that git
  process (and of the git processes it starts) carry session ids beginning
  with the caller's trace id (https://git-scm.com/docs/api-trace2).
* :func:`sanitize_argv` is what gets recorded of a command line: URL
  credentials removed, values of credential-bearing options masked. The
  sanitizer processor runs again later in the pipeline; this is the first line.
* :func:`subcommand_of` / :func:`event_name_for` name the event of a git
  command line, shared by the Python API and the ``gitaudit git`` wrapper so a
  push is a ``git.push`` whichever way it was made.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry import trace

from . import semconv as sc
from .git_urls import strip_credentials_in_text

#: Environment variable git reads its trace2 parent session id from.
ENV_TRACE2_PARENT_SID = "GIT_TRACE2_PARENT_SID"

#: Environment of gitaudit's own look-ups (rev-parse, config, status): trace2
#: event output off, so a trace2 agent does not audit the auditor's plumbing.
LOOKUP_ENV: Mapping[str, str] = {"GIT_TRACE2_EVENT": "0"}

#: What replaces a masked value in a recorded argv.
MASK = "[REDACTED]"

# -c key=value: keys whose value is a credential (http.extraHeader, http.<url>.extraHeader, ...)
_SECRET_CONFIG_KEY = re.compile(
    r"(extraheader|password|passwd|token|secret|authorization|credential|cookie|apikey|api-key)",
    re.I,
)
# --password=x / --password x style options (git itself has none; wrappers and tools do)
_SECRET_OPTION = re.compile(r"^--?[\w-]*(password|passwd|token|secret|api-key|apikey)[\w-]*$", re.I)

# git's own options taking a separate value, before the subcommand (git help git)
_GLOBAL_OPTS_WITH_VALUE = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace"})

_EVENT_OF_SUBCOMMAND = {
    "clone": sc.EventName.GIT_CLONE,
    "fetch": sc.EventName.GIT_FETCH,
    "pull": sc.EventName.GIT_PULL,
    "commit": sc.EventName.GIT_COMMIT,
    "push": sc.EventName.GIT_PUSH,
    "rebase": sc.EventName.GIT_REBASE,
    "merge": sc.EventName.GIT_MERGE,
    "cherry-pick": sc.EventName.GIT_CHERRY_PICK,
    "checkout": sc.EventName.GIT_CHECKOUT,
    "switch": sc.EventName.GIT_CHECKOUT,
    "tag": sc.EventName.GIT_TAG,
    "reset": sc.EventName.GIT_RESET,
}


@dataclass(frozen=True)
class GitResult:
    """One finished git process.

    Attributes:
        argv: the command line as recorded (sanitized, see :func:`sanitize_argv`).
        exit_code: git's exit status; ``128 + N`` when killed by signal N.
        stdout: standard output, decoded as UTF-8 (invalid bytes replaced).
        stderr: standard error, decoded likewise.
        duration_ms: wall time of the process in milliseconds.
    """

    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    duration_ms: float
    cwd: str | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        """True when git exited 0."""
        return self.exit_code == 0


def _mask_config(item: str) -> str:
    key, sep, _value = item.partition("=")
    if sep and _SECRET_CONFIG_KEY.search(key):
        return f"{key}={MASK}"
    return item


def sanitize_argv(argv: Sequence[str]) -> list[str]:
    """Return a copy of ``argv`` that is safe to record.

    * URL userinfo is removed from every element (``https://u:t@h/x`` -> ``https://h/x``);
    * the value of ``-c key=value`` / ``--config key=value`` / ``-ckey=value`` is
      masked when the key names a credential (``http.extraHeader``,
      ``http.<url>.extraHeader``, ``*password*``, ``*token*``, ...);
    * the value of ``--password=x`` / ``--password x``-like options is masked.

    Args:
        argv: the command line (with or without the leading ``git``).

    Returns:
        A new list of the same length.
    """
    out: list[str] = []
    mask_next: str | None = None  # "config" or "value"
    for raw in argv:
        item = strip_credentials_in_text(str(raw))
        if mask_next == "config":
            item = _mask_config(item)
            mask_next = None
        elif mask_next == "value":
            item = MASK
            mask_next = None
        elif item in ("-c", "--config"):
            mask_next = "config"
        elif item.startswith("-c") and "=" in item and not item.startswith("--"):
            item = "-c" + _mask_config(item[2:])
        elif item.startswith("--config="):
            item = "--config=" + _mask_config(item[len("--config="):])
        elif item.startswith("-") and "=" in item:
            opt, _, _value = item.partition("=")
            if _SECRET_OPTION.match(opt):
                item = f"{opt}={MASK}"
        elif _SECRET_OPTION.match(item):
            mask_next = "value"
        out.append(item)
    return out


def sanitize_output(text: str, limit_chars: int = 2000) -> str:
    """Trim git output for an event: URL credentials removed, at most ``limit_chars``.

    Keeps the end of the text (git's last lines say what failed), stripped of
    surrounding whitespace.
    """
    text = strip_credentials_in_text(text).strip()
    if len(text) > limit_chars:
        text = "..." + text[-(limit_chars - 3):]
    return text


def subcommand_index(args: Sequence[str]) -> int | None:
    """Index in ``args`` (argv without ``git``) of the subcommand, after git's global options."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in _GLOBAL_OPTS_WITH_VALUE:
            i += 2
            continue
        if a.startswith("-"):
            if a in ("--help", "-h", "--version", "-v"):
                return None
            i += 1
            continue
        return i
    return None


def subcommand_of(args: Sequence[str]) -> str | None:
    """The git subcommand of ``args`` (argv without ``git``), e.g. ``push``; ``None`` if none."""
    i = subcommand_index(args)
    return args[i] if i is not None else None


def event_name_for(args: Sequence[str]) -> str:
    """The EventName of a git command line (argv without ``git``).

    ``push`` -> ``git.push``, ``cherry-pick`` -> ``git.cherry_pick``, ``switch`` ->
    ``git.checkout``, ``branch -d/-D/--delete`` -> ``git.branch.delete``; any
    other command -> ``git.command``.
    """
    i = subcommand_index(args)
    if i is None:
        return sc.EventName.GIT_COMMAND
    sub = args[i]
    if sub == "branch":
        rest = args[i + 1:]
        for a in rest:
            if a == "--":
                break
            if a == "--delete" or (a[:1] == "-" and a[1:2] != "-" and ("d" in a[1:] or "D" in a[1:])):
                return sc.EventName.GIT_BRANCH_DELETE
        return sc.EventName.GIT_COMMAND
    return _EVENT_OF_SUBCOMMAND.get(sub, sc.EventName.GIT_COMMAND)


def trace_parent_sid() -> str | None:
    """The active OTel trace id as 32 lowercase hex digits, ``None`` when no trace is active."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x")


def git_environment(env: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment for a git child process.

    ``base`` (default ``os.environ``) updated with ``env``; when a trace is
    active, ``GIT_TRACE2_PARENT_SID`` is set to its trace id unless ``env``
    sets it explicitly.
    """
    out = dict(os.environ if base is None else base)
    if env:
        out.update(env)
    sid = trace_parent_sid()
    if sid and not (env and ENV_TRACE2_PARENT_SID in env):
        out[ENV_TRACE2_PARENT_SID] = sid
    return out


def exit_code_of(returncode: int) -> int:
    """Shell convention for a process status: ``128 + N`` when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def run_git(
    args: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,  # noqa: A002 - mirrors subprocess.run
    git_binary: str = "git",
    timeout_s: float | None = None,
) -> GitResult:
    """Run ``git <args>`` once and return its :class:`GitResult`.

    Args:
        args: arguments after ``git``.
        cwd: working directory (default: the current one).
        env: variables to add to (and override in) ``os.environ``.
        input: text to feed to standard input (default: none, stdin is ``/dev/null``).
        git_binary: the git executable to run.
        timeout_s: kill git after this many seconds (``subprocess.TimeoutExpired``).

    Returns:
        The result; a non-zero exit is a result, not an exception.

    Raises:
        OSError: git could not be started (e.g. ``FileNotFoundError`` for a
            missing binary, ``NotADirectoryError`` for a bad ``cwd``).
        subprocess.TimeoutExpired: ``timeout_s`` passed.
    """
    argv = [git_binary, *[os.fspath(a) for a in args]]
    t0 = time.perf_counter_ns()
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=git_environment(env),
        input=input.encode() if input is not None else None,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    duration_ms = (time.perf_counter_ns() - t0) / 1e6
    return GitResult(
        argv=sanitize_argv(["git", *argv[1:]]),
        exit_code=exit_code_of(proc.returncode),
        stdout=proc.stdout.decode("utf-8", "replace"),
        stderr=proc.stderr.decode("utf-8", "replace"),
        duration_ms=duration_ms,
        cwd=os.fspath(cwd) if cwd is not None else None,
    )


class GitCommandError(Exception):
    """A git command exited non-zero (raised only when the caller asks, e.g. ``check=True``).

    Attributes:
        result: the :class:`GitResult` (sanitized argv, exit code, output).
        uid: ``log.record.uid`` of the audit event recorded for it, if any.

    The message holds the sanitized argv, the exit code and the trimmed,
    sanitized standard error -- never a credential from the URL or argv.
    """

    def __init__(self, result: GitResult, uid: str | None = None) -> None:
        self.result = result
        self.uid = uid
        self.exit_code = result.exit_code
        super().__init__(
            f"{' '.join(result.argv)} exited {result.exit_code}: {sanitize_output(result.stderr, 500)}"
        )
