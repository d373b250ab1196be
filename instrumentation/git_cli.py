"""``gitaudit git <args>``: run git exactly as typed, and record it.

:func:`run_passthrough` runs the real git with the caller's standard input,
output and error inherited -- prompts, pagers, colours and progress behave as
with plain git -- and returns git's exit status unchanged (``128 + N`` when git
is killed by signal N, as a shell reports it). Ctrl-C reaches git as usual;
gitaudit itself waits for git to end and records the event before exiting.

One event per command, named by the subcommand (``git.push``, ``git.clone``,
``git.checkout`` for ``switch``, ``git.branch.delete`` for ``branch -d``, else
``git.command``), with ``git.command``, ``git.exit_code``, ``git.argv``
(sanitized), ``audit.duration_ms`` and outcome (``failure`` with ``error.type``
``git.exit_<code>`` when git exits non-zero; git's standard error is the
user's, so it is not captured). After the run, when it ran inside a
repository (for clone: the new one), two cheap look-ups add
``vcs.ref.head.name`` / ``.revision``, ``git.repository.path`` and the remote's
``vcs.repository.url.full`` (credentials removed) / ``.name``.

``GIT_TRACE2_PARENT_SID`` is set to the event's trace id, so a trace2 agent
joins git's own events to this one.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Sequence

from ..processors.durable import ensure_audit_capacity
from ..processors.spool import AuditUnavailableError
from . import semconv as sc
from .events import Operation, operation
from .git_runner import (
    LOOKUP_ENV,
    exit_code_of,
    event_name_for,
    git_environment,
    run_git,
    sanitize_argv,
    subcommand_index,
)
from .git_urls import repository_attributes

_log = logging.getLogger(__name__)

# options of `git clone` that take a separate value (git help clone)
_CLONE_OPTS_WITH_VALUE = frozenset({
    "-b", "--branch", "-o", "--origin", "-u", "--upload-pack", "--depth", "--reference",
    "--reference-if-able", "--separate-git-dir", "--template", "-c", "--config", "-j", "--jobs",
    "--shallow-since", "--shallow-exclude", "--server-option", "--filter", "--bundle-uri",
})
_REMOTE_COMMANDS = frozenset({"push", "fetch", "pull", "ls-remote", "remote"})


def _positionals(args: Sequence[str], with_value: frozenset[str] = frozenset()) -> list[str]:
    out: list[str] = []
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a == "--":
            out.extend(args[i + 1:])
            break
        if a.startswith("-") and a != "-":
            skip = a in with_value
            continue
        out.append(a)
    return out


def clone_destination(clone_args: Sequence[str]) -> tuple[str | None, str | None]:
    """``(url, dest)`` of ``git clone`` arguments (after ``clone``).

    ``dest`` is the directory argument, or derived from the URL as git does
    ("humanish" part: last path component without ``/.git`` and ``.git``;
    ``.git`` appended for ``--bare``/``--mirror``). ``(None, None)`` when no URL.
    """
    pos = _positionals(clone_args, _CLONE_OPTS_WITH_VALUE)
    if not pos:
        return None, None
    url = pos[0]
    if len(pos) > 1:
        return url, pos[1]
    name = url.rstrip("/")
    if name.endswith("/.git"):
        name = name[:-5]
    name = name.replace("\\", "/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    if name.endswith(".git"):
        name = name[:-4]
    if any(a in ("--bare", "--mirror") for a in clone_args):
        name += ".git"
    return url, name or None


def _is_oid(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def _record_repository(op: Operation, args: list[str], idx: int, git_binary: str) -> None:
    """Add head, path and remote attributes with at most two quick git look-ups."""
    sub, rest = args[idx], args[idx + 1:]
    globals_ = list(args[:idx])
    remote = "origin"
    if sub == "clone":
        url, dest = clone_destination(rest)
        if url:
            op.update(repository_attributes(url))
        if not dest or op.attributes.get(sc.GIT_EXIT_CODE) != 0:
            return
        globals_ = [*globals_, "-C", dest]
    elif sub in _REMOTE_COMMANDS:
        pos = _positionals(rest, frozenset({"-o", "--push-option", "--repo", "--receive-pack",
                                            "--exec", "--upload-pack", "--depth", "-j", "--jobs"}))
        if pos and sub != "remote":
            remote = pos[0]
    res = run_git([*globals_, "rev-parse", "--absolute-git-dir", "HEAD", "--symbolic-full-name", "HEAD",
                   "--show-toplevel"], env=LOOKUP_ENV, git_binary=git_binary)
    lines = res.stdout.split("\n")
    if not lines[0].startswith("/"):
        return  # not in a repository
    # a bare repository stops before --show-toplevel, an unborn HEAD before the revision
    has_head = len(lines) >= 3 and _is_oid(lines[1])
    top = lines[3] if has_head and len(lines) >= 4 and lines[3] else lines[0]
    op.set(sc.GIT_REPOSITORY_PATH, top)
    if has_head:
        op.set(sc.VCS_REF_HEAD_REVISION, lines[1])
        if lines[2].startswith("refs/heads/"):
            op.set(sc.VCS_REF_HEAD_NAME, lines[2][len("refs/heads/"):])
            op.set(sc.VCS_REF_TYPE, "branch")
    if sub not in ("clone",):
        if "://" in remote or ":" in remote or "/" in remote:
            op.update(repository_attributes(remote))
            return
        cfg = run_git([*globals_, "config", "--get", f"remote.{remote}.url"], env=LOOKUP_ENV,
                      git_binary=git_binary)
        if cfg.ok and cfg.stdout.strip():
            op.update(repository_attributes(cfg.stdout.strip()))


def run_passthrough(argv: Sequence[str], *, git_binary: str = "git") -> int:
    """Run ``git <argv>`` with inherited stdio, record one audit event, return git's exit code.

    Args:
        argv: the arguments after ``git`` (e.g. ``["push", "--force", "origin", "main"]``).
        git_binary: the git executable.

    Returns:
        git's exit status (``128 + N`` if killed by signal N; 127 if git
        cannot be started, as a shell would say).

    The audit plumbing never changes git's behaviour or exit code: look-up and
    emit errors are logged, not raised.
    """
    args = [os.fspath(a) for a in argv]
    try:
        ensure_audit_capacity()  # fail closed: refuse git when a fail-closed spool cannot take the event
    except AuditUnavailableError as exc:
        os.write(2, f"gitaudit: refusing to run git: {exc}\n".encode())
        return 75  # EX_TEMPFAIL
    idx = subcommand_index(args)
    sub = args[idx] if idx is not None else ""
    code = 127
    try:
        with operation(event_name_for(args), **{sc.GIT_COMMAND: sub}) as op:
            op.set(sc.GIT_ARGV, sanitize_argv(["git", *args]))
            previous = signal.getsignal(signal.SIGINT)
            # a Python handler (unlike SIG_IGN) is reset to default in the child on exec
            signal.signal(signal.SIGINT, lambda *_: None)
            try:
                proc = subprocess.Popen([git_binary, *args], env=git_environment())
                code = exit_code_of(proc.wait())
            except OSError as exc:
                op.set(sc.GIT_EXIT_CODE, code)
                op.fail(type(exc).__name__, f"cannot run {git_binary}: {exc.strerror}")
                os.write(2, f"gitaudit: cannot run {git_binary}: {exc.strerror}\n".encode())
                return code
            finally:
                signal.signal(signal.SIGINT, previous)
            op.set(sc.GIT_EXIT_CODE, code)
            if code != 0:
                op.fail(f"git.exit_{code}")
            op.body = f"{' '.join(op.attributes[sc.GIT_ARGV])} -> exit {code}"
            if idx is not None:
                try:
                    _record_repository(op, args, idx, git_binary)
                except Exception:  # noqa: BLE001 - audit plumbing never breaks git
                    _log.warning("gitaudit: could not look up repository state", exc_info=True)
    except Exception:  # noqa: BLE001 - emitting failed; git's result stands
        _log.warning("gitaudit: could not record the git event", exc_info=True)
    return code
