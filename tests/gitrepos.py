"""Build real git repositories for tests: a bare origin, clones, commits, conflicts.

Everything here runs the real ``git`` binary (plain :mod:`subprocess`, not
the audited API, so setting up a scenario emits no audit events).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def git(cwd: str | os.PathLike[str], *args: str, check: bool = True, input: str | None = None) -> str:  # noqa: A002
    """Run plain git in ``cwd`` and return its stripped stdout (raises on failure when ``check``)."""
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, input=input,
        env={**os.environ, "GIT_EDITOR": "true", "GIT_MERGE_AUTOEDIT": "no"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout.strip()


def rev(cwd: str | os.PathLike[str], revision: str = "HEAD") -> str:
    """Full sha of ``revision`` in the repository at ``cwd``."""
    return git(cwd, "rev-parse", f"{revision}^{{commit}}")


def init_repo(path: Path, *, branch: str = "main", bare: bool = False) -> Path:
    """Create an empty repository at ``path`` with initial branch ``branch``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch, *(["--bare"] if bare else []))
    if not bare:
        git(path, "config", "commit.gpgsign", "false")
    return path


def write(repo: Path, name: str, content: str) -> Path:
    """Write ``content`` to ``repo/name`` (creating directories)."""
    target = repo / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    return target


def commit_file(repo: Path, name: str, content: str, message: str | None = None) -> str:
    """Write, stage and commit one file; return the new commit's sha."""
    write(repo, name, content)
    git(repo, "add", "--", name)
    git(repo, "commit", "-q", "-m", message or f"update {name}")
    return rev(repo)


def commits(repo: Path, n: int, prefix: str = "c") -> list[str]:
    """Make ``n`` commits, each adding a file ``<prefix><i>.txt``; return their shas."""
    return [commit_file(repo, f"{prefix}{i}.txt", f"{prefix} {i}\n") for i in range(n)]


def origin_with_clone(tmp: Path, *, files: dict[str, str] | None = None) -> tuple[Path, Path]:
    """A bare ``origin.git`` holding one commit on ``main``, and a work clone of it.

    Returns:
        ``(origin, work)``; ``work`` tracks ``origin/main``.
    """
    origin = init_repo(tmp / "origin.git", bare=True)
    seed = init_repo(tmp / "seed")
    for name, content in (files or {"README.md": "hello\n"}).items():
        write(seed, name, content)
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "initial")
    git(seed, "push", "-q", str(origin), "main")
    work = clone(origin, tmp / "work")
    return origin, work


def clone(origin: Path, dest: Path) -> Path:
    """Plain ``git clone`` of ``origin`` into ``dest``."""
    git(dest.parent, "clone", "-q", str(origin), str(dest))
    git(dest, "config", "commit.gpgsign", "false")
    return dest


def diverge(repo: Path, base_files: dict[str, str], ours: dict[str, str | None],
            theirs: dict[str, str | None], *, ours_renames: dict[str, str] | None = None,
            theirs_renames: dict[str, str] | None = None) -> tuple[str, str]:
    """Make branches ``main`` (ours) and ``side`` (theirs) diverging from a common base.

    Args:
        repo: an initialised, empty work tree on ``main``.
        base_files: files of the base commit.
        ours / theirs: files to write (``None`` deletes) on ``main`` / ``side``.
        ours_renames / theirs_renames: ``old -> new`` renames (``git mv``) on each side.

    Returns:
        ``(main_sha, side_sha)``; ``main`` is checked out.
    """
    for name, content in base_files.items():
        write(repo, name, content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", "base")
    git(repo, "checkout", "-q", "-b", "side")
    _apply(repo, theirs, theirs_renames or {}, "theirs")
    git(repo, "checkout", "-q", "main")
    _apply(repo, ours, ours_renames or {}, "ours")
    return rev(repo, "main"), rev(repo, "side")


def _apply(repo: Path, files: dict[str, str | None], renames: dict[str, str], message: str) -> None:
    for old, new in renames.items():
        git(repo, "mv", old, new)
    for name, content in files.items():
        if content is None:
            git(repo, "rm", "-q", "--", name)
        else:
            write(repo, name, content)
            git(repo, "add", "--", name)
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


@pytest.fixture(autouse=True)
def isolated_git_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user-level git configuration (pull.rebase, init.defaultBranch, ...) in tests."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_TRACE2_PARENT_SID", raising=False)
