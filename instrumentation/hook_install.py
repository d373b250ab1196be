"""Install and remove gitaudit's server-side hooks in a (bare) git repository.

Usage::

    from gitaudit.instrumentation.hook_install import install, uninstall
    install("/srv/git/project.git", protected=("main", "release/*"),
            spool_dir="/var/spool/gitaudit", endpoint="http://audit:4318")
    uninstall("/srv/git/project.git")

or ``gitaudit hooks install /srv/git/project.git``. Two POSIX shell hooks are
written into the repository's hooks directory (``git rev-parse --git-path
hooks``, so ``core.hooksPath`` is honoured): ``pre-receive`` and
``post-receive`` (why not ``reference-transaction``: see
:mod:`gitaudit.instrumentation.hooks`). Each one:

* chains to the hook that was there before: the original file is moved to
  ``<name>.gitaudit-chained`` and run first, with the same arguments and the
  same stdin. A chained ``pre-receive``'s exit status still rejects the push;
  a chained ``post-receive``'s status is passed through;
* then runs ``<python> -m gitaudit.instrumentation.hooks <name>`` with the
  interpreter recorded at install time (``sys.executable``, absolute), and the
  configuration in ``GITAUDIT_HOOK_CONFIG``. The pre-receive script does so
  only when the chained hook rejected the push (to record the denial); without
  a chained pre-receive it exits 0 without starting Python;
* ignores gitaudit's own exit status and errors: the push never depends on them.

``install`` is idempotent (a second install rewrites gitaudit's scripts with
the new configuration and never chains to itself); ``uninstall`` removes them
and moves the original hooks back.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .hooks import DEFAULT_PROTECTED, DEFAULT_PUSHER_VARS, ENV_CHAINED_STATUS, ENV_HOOK_CONFIG, HookConfig

#: First line after the shebang of every script gitaudit writes.
MARKER = "# gitaudit-hook v1"
#: Suffix of an original hook moved aside by :func:`install`.
CHAINED_SUFFIX = ".gitaudit-chained"
#: The hooks :func:`install` writes.
INSTALLED_HOOKS: tuple[str, ...] = ("pre-receive", "post-receive")
#: Module the scripts run.
HOOK_MODULE = "gitaudit.instrumentation.hooks"


class HookInstallError(RuntimeError):
    """The hooks cannot be installed or removed (not a repository, a conflicting file)."""


@dataclass
class InstallResult:
    """What :func:`install` / :func:`uninstall` did.

    Attributes:
        hooks_dir: the repository's hooks directory.
        written: hook names whose gitaudit script was (re)written / removed.
        chained: hook names whose original hook is chained / was restored.
    """

    hooks_dir: Path
    written: list[str] = field(default_factory=list)
    chained: list[str] = field(default_factory=list)


def hooks_dir(repo: str | os.PathLike[str]) -> Path:
    """The hooks directory of ``repo`` (honours ``core.hooksPath``).

    Raises:
        HookInstallError: ``repo`` is not a git repository.
    """
    repo = os.path.realpath(os.fspath(repo))
    if not os.path.isdir(repo):
        raise HookInstallError(f"not a git repository: {repo}")
    proc = subprocess.run(["git", "rev-parse", "--absolute-git-dir", "--git-path", "hooks"],
                          cwd=repo, capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    # refuse a directory that is merely *inside* some other repository
    if proc.returncode != 0 or len(lines) != 2 or os.path.realpath(lines[0]) not in (
            repo, os.path.join(repo, ".git")):
        raise HookInstallError(f"not a git repository: {repo}")
    path = Path(lines[1])
    return path if path.is_absolute() else Path(repo) / path


def is_gitaudit_hook(path: Path) -> bool:
    """Whether ``path`` is a script written by :func:`install`."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return False
    return MARKER.encode() in head


_PRE_RECEIVE_BODY = """\
if [ ! -x "$chained" ]; then
    cat >/dev/null
    exit 0
fi
tmp=$(mktemp "${TMPDIR:-/tmp}/gitaudit-pre-receive.XXXXXX" 2>/dev/null) || tmp=
if [ -z "$tmp" ]; then
    "$chained" "$@"
    exit $?
fi
trap 'rm -f "$tmp"' EXIT
cat >"$tmp"
"$chained" "$@" <"$tmp"
status=$?
if [ "$status" -ne 0 ]; then
    %(status_var)s=$status "$python" -m %(module)s pre-receive <"$tmp" || :
fi
exit $status
"""

_POST_RECEIVE_BODY = """\
tmp=$(mktemp "${TMPDIR:-/tmp}/gitaudit-post-receive.XXXXXX" 2>/dev/null) || tmp=
if [ -z "$tmp" ]; then
    echo "gitaudit: cannot create a temporary file; push not audited" >&2
    if [ -x "$chained" ]; then "$chained" "$@"; exit $?; fi
    cat >/dev/null
    exit 0
fi
trap 'rm -f "$tmp"' EXIT
cat >"$tmp"
status=0
if [ -x "$chained" ]; then
    "$chained" "$@" <"$tmp"
    status=$?
fi
"$python" -m %(module)s post-receive <"$tmp" || :
exit $status
"""


def render_script(hook: str, chained: Path, config: HookConfig, python: str) -> str:
    """The shell script text of ``hook`` (``pre-receive`` or ``post-receive``)."""
    body = _PRE_RECEIVE_BODY if hook == "pre-receive" else _POST_RECEIVE_BODY
    header = (
        "#!/bin/sh\n"
        f"{MARKER}: {hook}\n"
        "# Written by `gitaudit hooks install`; `gitaudit hooks uninstall` restores the\n"
        f"# original hook, kept as {chained.name} and run first.\n"
        f"{ENV_HOOK_CONFIG}={shlex.quote(config.to_json())}\n"
        f"export {ENV_HOOK_CONFIG}\n"
        f"python={shlex.quote(python)}\n"
        f"chained={shlex.quote(str(chained))}\n"
    )
    return header + body % {"module": HOOK_MODULE, "status_var": ENV_CHAINED_STATUS}


def install(
    bare_repo: str | os.PathLike[str],
    *,
    protected: Sequence[str] = DEFAULT_PROTECTED,
    pusher_vars: Sequence[str] = DEFAULT_PUSHER_VARS,
    spool_dir: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    python: str | None = None,
    organization_id: str | None = None,
    repository_name: str | None = None,
) -> InstallResult:
    """Install gitaudit's ``pre-receive`` and ``post-receive`` hooks into ``bare_repo``.

    Args:
        bare_repo: path of the repository users push to.
        protected: fnmatch patterns of protected branches (``git.ref.protected``).
        pusher_vars: environment variables naming the pusher, first set wins.
        spool_dir: durable spool directory (absolute path recorded).
        endpoint: base URL of the OTLP/HTTP receiver the drain delivers to.
        python: interpreter the hooks run (default: this one, ``sys.executable``).
        organization_id: ``audit.organization.id`` of the recorded events.
        repository_name: ``vcs.repository.name`` of the recorded events (default:
            the directory name without ``.git``).

    Returns:
        An :class:`InstallResult`.

    Raises:
        HookInstallError: not a repository, or a ``*.gitaudit-chained`` file is
            in the way of a hook that is not gitaudit's.
    """
    directory = hooks_dir(bare_repo)
    directory.mkdir(parents=True, exist_ok=True)
    config = HookConfig(
        protected=tuple(protected),
        pusher_vars=tuple(pusher_vars),
        spool_dir=os.path.abspath(os.fspath(spool_dir)) if spool_dir else None,
        endpoint=endpoint,
        organization_id=organization_id,
        repository_name=repository_name or None,
    )
    interpreter = os.path.abspath(python or sys.executable)
    result = InstallResult(directory)
    for hook in INSTALLED_HOOKS:
        path = directory / hook
        chained = directory / (hook + CHAINED_SUFFIX)
        exists = path.exists() or path.is_symlink()
        if exists and not is_gitaudit_hook(path):
            if chained.exists() or chained.is_symlink():
                raise HookInstallError(
                    f"{path} is not gitaudit's and {chained.name} exists already; "
                    "merge them by hand, then install again"
                )
            os.replace(path, chained)
        tmp = path.with_name(f".{hook}.gitaudit-tmp")
        tmp.write_text(render_script(hook, chained, config, interpreter))
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(tmp, path)
        result.written.append(hook)
        if chained.exists() or chained.is_symlink():
            result.chained.append(hook)
    return result


def uninstall(bare_repo: str | os.PathLike[str]) -> InstallResult:
    """Remove gitaudit's hooks from ``bare_repo`` and move the chained originals back.

    A hook file that is not gitaudit's (someone replaced it) is left alone, and
    so is its chained original.

    Returns:
        An :class:`InstallResult` (``written``: removed scripts; ``chained``: restored hooks).

    Raises:
        HookInstallError: not a repository.
    """
    directory = hooks_dir(bare_repo)
    result = InstallResult(directory)
    for hook in INSTALLED_HOOKS:
        path = directory / hook
        chained = directory / (hook + CHAINED_SUFFIX)
        if not is_gitaudit_hook(path):
            continue
        path.unlink()
        result.written.append(hook)
        if chained.exists() or chained.is_symlink():
            os.replace(chained, path)
            result.chained.append(hook)
    return result


__all__ = [
    "CHAINED_SUFFIX",
    "HookInstallError",
    "InstallResult",
    "hooks_dir",
    "install",
    "is_gitaudit_hook",
    "render_script",
    "uninstall",
]
