"""Merge conflicts: find them, classify them, count their hunks, emit events.

Two sources:

* a work tree stopped by ``merge``, ``rebase``, ``cherry-pick`` or ``pull``:
  :func:`detect_conflicts` reads ``git status --porcelain=v2 -z`` unmerged
  entries (``u <XY> <sub> <m1> <m2> <m3> <mW> <h1> <h2> <h3> <path>``, see
  https://git-scm.com/docs/git-status#_porcelain_format_version_2) and counts
  conflict markers in the work-tree file;
* a work-tree-free merge: :func:`merge_tree_conflicts` runs
  ``git merge-tree --write-tree -z`` (git >= 2.38) and reads its
  "Conflicted file info" section (``<mode> <object> <stage>\\t<path>``), taking
  the same XY code from the set of index stages present, and counts markers in
  the file as written into the result tree.

The XY code -> ``conflict.type`` mapping is git's own (``wt-status.c``)::

    DD both_deleted     (stage 1 only: rename/rename(1to2), source path)
    AU added_by_us      (stage 2 only: rename/rename(1to2), our new path)
    UA added_by_them    (stage 3 only: rename/rename(1to2), their new path)
    UD deleted_by_them  (stages 1+2: modify/delete, rename/delete)
    DU deleted_by_us    (stages 1+3: delete/modify, delete/rename)
    AA both_added       (stages 2+3: add/add)
    UU both_modified    (stages 1+2+3: content conflict)

``conflict.hunks`` is the number of ``<<<<<<<`` ... ``>>>>>>>`` regions in the
file (0 when the file has none or is absent: modify/delete and rename
conflicts); ``conflict.lines`` the number of content lines inside them (marker
lines not counted).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import semconv as sc
from .events import emit_event, ensure_trace
from .git_runner import LOOKUP_ENV, GitCommandError, git_environment, run_git

_log = logging.getLogger(__name__)

#: porcelain v2 XY code -> ``conflict.type``.
CONFLICT_TYPES: Mapping[str, str] = {
    "DD": "both_deleted",
    "AU": "added_by_us",
    "UD": "deleted_by_them",
    "UA": "added_by_them",
    "DU": "deleted_by_us",
    "AA": "both_added",
    "UU": "both_modified",
}

#: set of index stages present -> XY code (git's wt-status.c ``unmerged_mask``).
_XY_OF_STAGES: Mapping[frozenset[int], str] = {
    frozenset({1}): "DD",
    frozenset({2}): "AU",
    frozenset({1, 2}): "UD",
    frozenset({3}): "UA",
    frozenset({1, 3}): "DU",
    frozenset({2, 3}): "AA",
    frozenset({1, 2, 3}): "UU",
}

_START = re.compile(rb"^(<{7,})(?: |$)")


@dataclass(frozen=True)
class Conflict:
    """One conflicted file.

    Attributes:
        path: path relative to the repository root (``/``-separated).
        code: porcelain v2 XY code (``UU``, ``AA``, ...).
        type: ``conflict.type`` (``both_modified``, ...).
        hunks: number of conflict-marker regions in the file.
        lines: our and their lines inside those regions (markers and diff3
            base lines not counted).
    """

    path: str
    code: str
    type: str
    hunks: int = 0
    lines: int = 0

    def attributes(self) -> dict[str, Any]:
        """The ``conflict.*`` attributes of this file."""
        return {
            sc.CONFLICT_FILE_PATH: self.path,
            sc.CONFLICT_TYPE: self.type,
            sc.CONFLICT_HUNKS: self.hunks,
            sc.CONFLICT_LINES: self.lines,
        }


def conflict_type(code: str) -> str:
    """``conflict.type`` of a porcelain v2 XY code; ``unknown`` for other codes."""
    return CONFLICT_TYPES.get(code, "unknown")


def code_of_stages(stages: Iterable[int]) -> str:
    """XY code of the set of index stages (1 base, 2 ours, 3 theirs) a path has."""
    return _XY_OF_STAGES.get(frozenset(stages), "UU")


def parse_unmerged(porcelain_v2_z: str) -> list[tuple[str, str]]:
    """Return ``(XY, path)`` of each unmerged entry in ``git status --porcelain=v2 -z`` output.

    Ordinary (``1``), renamed (``2``, two NUL-separated paths), untracked
    (``?``), ignored (``!``) and header (``#``) entries are skipped.
    """
    out: list[tuple[str, str]] = []
    tokens = porcelain_v2_z.split("\0")
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok.startswith("2 "):
            i += 1  # the original path of a rename/copy follows
        elif tok.startswith("u "):
            parts = tok.split(" ", 10)
            if len(parts) == 11:
                out.append((parts[1], parts[10]))
    return out


def count_markers(content: bytes) -> tuple[int, int]:
    """Count conflict regions and the content lines inside them.

    A region starts at a line of 7 or more ``<`` (git's default marker size is
    7; ``conflict-marker-size`` may make it longer) followed by a space or end
    of line, and ends at a line of as many ``>``. ``|||||||`` (diff3 base) and
    ``=======`` separator lines, and the base version between them (diff3 /
    zdiff3 style), are not counted as content.

    Returns:
        ``(hunks, lines)``.
    """
    hunks = lines = 0
    end: re.Pattern[bytes] | None = None
    base: re.Pattern[bytes] | None = None
    sep = b""
    in_base = False
    for line in content.splitlines():
        if end is None:
            m = _START.match(line)
            if m:
                size = len(m.group(1))
                end = re.compile(rb">{%d}(?: |$)" % size)
                base = re.compile(rb"\|{%d}(?: |$)" % size)
                sep = b"=" * size
                hunks += 1
            continue
        if end.match(line):
            end = None
            in_base = False
        elif base.match(line):
            in_base = True
        elif line == sep:
            in_base = False
        elif not in_base:
            lines += 1
    return hunks, lines


def _read_worktree_file(path: str) -> bytes | None:
    try:
        if not os.path.isfile(path) or os.path.islink(path):
            return None
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def repository_root(repo_path: str | os.PathLike[str], *, git_binary: str = "git",
                    env: Mapping[str, str] | None = None) -> str:
    """Top directory of the work tree containing ``repo_path``.

    Raises:
        GitCommandError: ``repo_path`` is not inside a work tree.
    """
    res = run_git(["rev-parse", "--show-toplevel"], cwd=repo_path, env={**(env or {}), **LOOKUP_ENV},
                  git_binary=git_binary)
    if not res.ok:
        raise GitCommandError(res)
    return res.stdout.rstrip("\n")


def detect_conflicts(repo_path: str | os.PathLike[str], *, git_binary: str = "git",
                     env: Mapping[str, str] | None = None) -> list[Conflict]:
    """Return the unmerged files of the work tree at ``repo_path``, sorted by path.

    Runs ``git rev-parse --show-toplevel`` and
    ``git status --porcelain=v2 -z --untracked-files=no``; reads each
    conflicted file once to count its hunks.

    Raises:
        GitCommandError: ``repo_path`` is not a work tree or status failed.
    """
    top = repository_root(repo_path, git_binary=git_binary, env=env)
    res = run_git(["status", "--porcelain=v2", "-z", "--untracked-files=no", "--ignored=no"],
                  cwd=top, env={**(env or {}), **LOOKUP_ENV}, git_binary=git_binary)
    if not res.ok:
        raise GitCommandError(res)
    conflicts = []
    for code, path in parse_unmerged(res.stdout):
        content = _read_worktree_file(os.path.join(top, path))
        hunks, lines = count_markers(content) if content is not None else (0, 0)
        conflicts.append(Conflict(path, code, conflict_type(code), hunks, lines))
    return sorted(conflicts, key=lambda c: c.path)


def emit_conflicts(
    repo_path: str | os.PathLike[str] | None = None,
    *,
    conflicts: Sequence[Conflict] | None = None,
    operation: str = "rebase",
    base_ref: str | None = None,
    base_revision: str | None = None,
    head_ref: str | None = None,
    head_revision: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    git_binary: str = "git",
) -> list[str]:
    """Emit one ``conflict.detected`` event per conflicted file; return their uids.

    Args:
        repo_path: the work tree; its conflicts are detected when ``conflicts``
            is not given. Recorded as ``git.repository.path``.
        conflicts: conflicts found already (e.g. by :func:`merge_tree_conflicts`).
        operation: the git command that stopped (``rebase``, ``merge``,
            ``cherry-pick``, ``pull``, ``merge-tree``), recorded as ``git.command``.
        base_ref / base_revision: ``vcs.ref.base.name`` / ``.revision`` (the
            upstream or the merged ref).
        head_ref / head_revision: ``vcs.ref.head.name`` / ``.revision``.
        attributes: further attributes for every event (repository URL, ...).

    Returns:
        The events' ``log.record.uid`` in path order (empty when no conflict).
    """
    if conflicts is None:
        if repo_path is None:
            raise ValueError("emit_conflicts needs repo_path or conflicts")
        conflicts = detect_conflicts(repo_path, git_binary=git_binary)
    common: dict[str, Any] = dict(attributes or {})
    common.update({
        sc.GIT_COMMAND: operation,
        sc.VCS_REF_BASE_NAME: base_ref,
        sc.VCS_REF_BASE_REVISION: base_revision,
        sc.VCS_REF_HEAD_NAME: head_ref,
        sc.VCS_REF_HEAD_REVISION: head_revision,
    })
    if repo_path is not None:
        common.setdefault(sc.GIT_REPOSITORY_PATH, os.path.abspath(os.fspath(repo_path)))
    uids = []
    with ensure_trace("conflict.detected"):
        for c in conflicts:
            attrs = {k: v for k, v in common.items() if v is not None}
            attrs.update(c.attributes())
            uids.append(emit_event(
                sc.EventName.CONFLICT_DETECTED,
                attributes=attrs,
                body=f"{operation}: {c.type} conflict in {c.path} ({c.hunks} hunks)",
            ))
    return uids


def parse_merge_tree(output_z: str) -> tuple[str, dict[str, set[int]]]:
    """Parse ``git merge-tree --write-tree -z`` output.

    Returns:
        ``(tree_oid, {path: {stages}})``; the mapping is empty for a clean merge.
    """
    tokens = output_z.split("\0")
    tree = tokens[0] if tokens else ""
    stages: dict[str, set[int]] = {}
    for tok in tokens[1:]:
        if tok == "":
            break  # an empty record ends the conflicted file info section
        head, sep, path = tok.partition("\t")
        fields = head.split(" ")
        if not sep or len(fields) != 3 or not fields[2].isdigit():
            break
        stages.setdefault(path, set()).add(int(fields[2]))
    return tree, stages


def _cat_blobs(repo_path: str | os.PathLike[str], names: Sequence[str], *, git_binary: str,
               env: Mapping[str, str] | None) -> dict[str, bytes | None]:
    """Contents of ``<tree>:<path>`` names via one ``git cat-file --batch``; None when missing."""
    wanted = [n for n in names if "\n" not in n]
    if not wanted:
        return {}
    proc = subprocess.run(
        [git_binary, "cat-file", "--batch"], cwd=repo_path, env=git_environment({**(env or {}), **LOOKUP_ENV}),
        input=("\n".join(wanted) + "\n").encode(), capture_output=True, check=False,
    )
    out: dict[str, bytes | None] = {}
    data, pos = proc.stdout, 0
    for name in wanted:
        nl = data.find(b"\n", pos)
        if nl == -1:
            break
        header = data[pos:nl].split(b" ")
        pos = nl + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            out[name] = data[pos:pos + size]
            pos += size + 1
        elif len(header) == 3:  # another object type: skip its body
            pos += int(header[2]) + 1
            out[name] = None
        else:
            out[name] = None  # "<name> missing" / "ambiguous"
    return out


def conflicts_from_merge_tree(repo_path: str | os.PathLike[str], output_z: str, *,
                              git_binary: str = "git",
                              env: Mapping[str, str] | None = None) -> list[Conflict]:
    """Conflicts in the output of ``git merge-tree --write-tree -z`` (no ``--name-only``).

    Counts the markers of each conflicted file as written into the result
    tree (one ``git cat-file --batch`` for all files).

    Returns:
        The conflicts, sorted by path (empty for a clean merge).
    """
    tree, stages = parse_merge_tree(output_z)
    if not stages:
        return []
    blobs = _cat_blobs(repo_path, [f"{tree}:{p}" for p in stages], git_binary=git_binary, env=env)
    conflicts = []
    for path, present in sorted(stages.items()):
        code = code_of_stages(present)
        content = blobs.get(f"{tree}:{path}")
        hunks, lines = count_markers(content) if content is not None else (0, 0)
        conflicts.append(Conflict(path, code, conflict_type(code), hunks, lines))
    return conflicts


def merge_tree_conflicts(
    repo_path: str | os.PathLike[str],
    ours: str,
    theirs: str,
    *,
    emit: bool = True,
    attributes: Mapping[str, Any] | None = None,
    git_binary: str = "git",
    env: Mapping[str, str] | None = None,
) -> list[Conflict]:
    """Merge ``ours`` and ``theirs`` without a work tree and return the conflicts.

    Runs ``git merge-tree --write-tree -z <ours> <theirs>`` (git >= 2.38;
    exit 0 clean, 1 conflicts), reads the "Conflicted file info" section and
    counts the markers in each conflicted file of the written tree. Nothing in
    the repository's refs, index or work tree changes.

    Args:
        repo_path: any directory of the repository (bare repositories work).
        ours / theirs: revisions to merge.
        emit: also emit one ``conflict.detected`` per file (``git.command`` =
            ``merge-tree``, head = ``ours``, base = ``theirs``).
        attributes: further attributes for the events.

    Returns:
        The conflicts, sorted by path (empty for a clean merge).

    Raises:
        GitCommandError: merge-tree failed (exit code other than 0 or 1, e.g.
            an unknown revision or a git older than 2.38).
    """
    res = run_git(["merge-tree", "--write-tree", "-z", ours, theirs], cwd=repo_path, env=env,
                  git_binary=git_binary)
    if res.exit_code not in (0, 1) or not re.fullmatch(r"[0-9a-f]{40,64}", res.stdout.split("\0", 1)[0]):
        raise GitCommandError(res)  # exit 1 without a tree: "not something we can merge"
    conflicts = conflicts_from_merge_tree(repo_path, res.stdout, git_binary=git_binary, env=env)
    if emit and conflicts:
        try:
            emit_conflicts(repo_path, conflicts=conflicts, operation="merge-tree", head_ref=ours,
                           base_ref=theirs, attributes=attributes, git_binary=git_binary)
        except Exception:  # audit plumbing never breaks the caller
            _log.warning("gitaudit: could not emit merge-tree conflict events", exc_info=True)
    return conflicts
