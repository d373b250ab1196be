"""Point git's trace2 event stream at the gitaudit agent (and take it back).

git reads the trace2 settings only from the *system* and *global* config
(https://git-scm.com/docs/git-config#Documentation/config/trace2.txt and
https://git-scm.com/docs/api-trace2): a repository's ``.git/config`` or ``-c``
cannot set them. :func:`install` writes, with ``git config``:

* ``trace2.eventTarget = af_unix:stream:<socket>`` -- git connects to the agent
  once per process; when nobody listens git drops the events silently and runs
  normally;
* ``trace2.eventNesting = 1`` -- only top-level regions are sent (the agent
  records those timings; deeper regions would only add traffic and overhead).

``scope="global"`` writes the user's global config (``$GIT_CONFIG_GLOBAL`` when
set, else ``~/.gitconfig``); ``scope="system"`` writes ``$(prefix)/etc/gitconfig``
(needs root); ``git_config_file`` writes that file instead (tests, images).
"""

from __future__ import annotations

import os
import subprocess
from typing import Literal

TARGET_KEY = "trace2.eventTarget"
NESTING_KEY = "trace2.eventNesting"
#: Nesting depth written by :func:`install`.
EVENT_NESTING = 1

Scope = Literal["global", "system"]


def target_for(socket_path: str | os.PathLike[str]) -> str:
    """The ``trace2.eventTarget`` value for a stream socket at ``socket_path`` (made absolute)."""
    return f"af_unix:stream:{os.path.abspath(os.fspath(socket_path))}"


def _where(scope: Scope, git_config_file: str | os.PathLike[str] | None) -> list[str]:
    if git_config_file is not None:
        return ["--file", os.fspath(git_config_file)]
    if scope not in ("global", "system"):
        raise ValueError(f"scope must be 'global' or 'system', not {scope!r}")
    return [f"--{scope}"]


def _git_config(args: list[str], git_binary: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([git_binary, "config", *args], capture_output=True, text=True, check=False)


def current_target(
    scope: Scope = "global", *, git_config_file: str | os.PathLike[str] | None = None,
    git_binary: str = "git",
) -> str | None:
    """Return the ``trace2.eventTarget`` set in that config (``None`` when unset)."""
    proc = _git_config([*_where(scope, git_config_file), "--get", TARGET_KEY], git_binary)
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def install(
    socket_path: str | os.PathLike[str],
    scope: Scope = "global",
    *,
    git_config_file: str | os.PathLike[str] | None = None,
    git_binary: str = "git",
) -> str:
    """Make every git process send its trace2 events to the agent's socket.

    Args:
        socket_path: the agent's AF_UNIX socket (made absolute).
        scope: ``"global"`` (user) or ``"system"`` (machine-wide, needs root).
        git_config_file: write this config file instead of ``scope``'s.
        git_binary: the git executable that writes the config.

    Returns:
        The ``trace2.eventTarget`` value written.

    Raises:
        ValueError: bad ``scope``.
        RuntimeError: ``git config`` failed (its stderr in the message).
    """
    where = _where(scope, git_config_file)
    target = target_for(socket_path)
    for key, value in ((TARGET_KEY, target), (NESTING_KEY, str(EVENT_NESTING))):
        proc = _git_config([*where, key, value], git_binary)
        if proc.returncode != 0:
            raise RuntimeError(f"git config {' '.join(where)} {key} failed: {proc.stderr.strip()}")
    return target


def uninstall(
    socket_path: str | os.PathLike[str] | None = None,
    scope: Scope = "global",
    *,
    git_config_file: str | os.PathLike[str] | None = None,
    git_binary: str = "git",
) -> bool:
    """Remove the agent's trace2 target (and the nesting :func:`install` set).

    Args:
        socket_path: remove the target only if it points at this socket;
            ``None`` removes any ``af_unix:stream:`` target (a file or another
            kind of target the user set is left alone).
        scope, git_config_file, git_binary: as for :func:`install`.

    Returns:
        True when a target was removed, False when there was none of ours.
    """
    where = _where(scope, git_config_file)
    target = current_target(scope, git_config_file=git_config_file, git_binary=git_binary)
    if target is None:
        return False
    ours = target == target_for(socket_path) if socket_path is not None else target.startswith("af_unix:stream:")
    if not ours:
        return False
    for key in (TARGET_KEY, NESTING_KEY):
        _git_config([*where, "--unset-all", key], git_binary)
    return True
