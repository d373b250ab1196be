"""An audited Python API over the real ``git`` binary.

Usage::

    from gitaudit.instrumentation import Git, audit_context, configure

    configure()
    with audit_context(user_id="alice", organization_id="acme"):
        Git().clone("https://github.com/org/repo.git", "/tmp/repo", depth=1)
        repo = Git("/tmp/repo")
        repo.commit("fix: typo", all=True)
        result = repo.push()                  # one git.push event
        if not result.ok:
            print(result.stderr)

Every method runs git once (plus cheap ``rev-parse`` / ``config`` look-ups for
refs, revisions and commit counts) and emits exactly one event
(DESIGN.md section 3) through :func:`gitaudit.instrumentation.operation`, with:

* ``git.command``, ``git.exit_code``, ``git.argv`` (sanitized), ``audit.duration_ms``
  (ms, the whole audited call), ``git.repository.path``;
* ``vcs.repository.url.full`` (credentials removed), ``vcs.repository.name``,
  ``vcs.provider.name`` of the remote involved (``origin`` for local commands);
* ``vcs.ref.head.name`` / ``vcs.ref.head.revision``: the branch and its commit
  after the operation (for push: the remote ref updated and the commit sent);
  ``vcs.ref.base.name`` / ``.revision`` for rebase, merge, cherry-pick, pull;
* push: ``git.commit.count``, ``git.push.forced``, ``git.push.deleted``,
  ``git.push.rejected`` from ``git push --porcelain``;
* outcome ``failure`` when git exits non-zero, with ``error.type`` =
  ``git.exit_<code>`` (``git.conflict`` when a merge/rebase/cherry-pick/pull
  stopped on conflicts, ``git.push.rejected`` when a ref was rejected) and the
  trimmed, sanitized standard error in ``audit.error.message``.

Conflicts additionally emit one ``conflict.detected`` event per file
(:mod:`gitaudit.instrumentation.conflicts`), in the same trace.

Failures are returned, not raised: every method returns an
:class:`OperationResult`; pass ``check=True`` to raise
:class:`~gitaudit.instrumentation.git_runner.GitCommandError` (after the event
is emitted). Git runs non-interactively: ``GIT_TERMINAL_PROMPT=0``,
``GIT_EDITOR=true`` and ``GIT_MERGE_AUTOEDIT=no`` unless ``env`` says otherwise.
Commit and tag messages go to git on standard input, so they never appear in
``git.argv``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from . import semconv as sc
from ..processors.durable import ensure_audit_capacity
from .conflicts import Conflict, conflicts_from_merge_tree, detect_conflicts, emit_conflicts
from .events import Operation, operation
from .git_runner import (
    LOOKUP_ENV,
    GitCommandError,
    GitResult,
    event_name_for,
    run_git,
    sanitize_output,
    subcommand_of,
)
from .git_urls import repository_attributes

_log = logging.getLogger(__name__)

#: Environment defaults for non-interactive git (overridable through ``Git(env=...)``).
NON_INTERACTIVE_ENV: Mapping[str, str] = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_MERGE_AUTOEDIT": "no",
}

RESET_MODES = frozenset({"soft", "mixed", "hard", "merge", "keep"})
_CONFLICT_COMMANDS = frozenset({"merge", "rebase", "cherry-pick", "pull", "revert", "am", "stash"})
ERROR_CONFLICT = "git.conflict"
ERROR_PUSH_REJECTED = "git.push.rejected"


@dataclass(frozen=True)
class OperationResult:
    """What an audited git call did.

    Attributes:
        event_name: the EventName emitted (``git.push``, ...).
        uid: ``log.record.uid`` of that event.
        exit_code: git's exit status.
        stdout / stderr: git's output (UTF-8, invalid bytes replaced), unsanitized.
        argv: the recorded (sanitized) command line.
        duration_ms: wall time of the git process, milliseconds.
        attributes: the operation's attributes as recorded (actor context excluded).
        conflicts: conflicted files when the command stopped on conflicts.
        conflict_uids: uids of the ``conflict.detected`` events.
    """

    event_name: str
    uid: str
    exit_code: int
    stdout: str
    stderr: str
    argv: list[str]
    duration_ms: float
    attributes: Mapping[str, Any] = field(default_factory=dict)
    conflicts: tuple[Conflict, ...] = ()
    conflict_uids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when git exited 0."""
        return self.exit_code == 0


@dataclass(frozen=True)
class PushRef:
    """One ref line of ``git push --porcelain`` (``<flag>\\t<from>:<to>\\t<summary>``).

    ``flag``: `` `` fast-forward, ``+`` forced, ``-`` deleted, ``*`` new,
    ``!`` rejected, ``=`` up to date (https://git-scm.com/docs/git-push#_output).
    """

    flag: str
    src: str
    dst: str
    summary: str


def parse_push_porcelain(stdout: str) -> list[PushRef]:
    """Return the ref lines of ``git push --porcelain`` output, in order."""
    refs = []
    for line in stdout.splitlines():
        if len(line) < 3 or line[1] != "\t":
            continue
        parts = line[2:].split("\t")
        if len(parts) < 2 or ":" not in parts[0]:
            continue
        src, _, dst = parts[0].rpartition(":")
        refs.append(PushRef(line[0], src, dst, parts[1]))
    return refs


def _short_ref(ref: str | None) -> str | None:
    if not ref:
        return None
    for prefix in ("refs/heads/", "refs/tags/", "refs/remotes/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def _ref_type(ref: str) -> str | None:
    if ref.startswith("refs/heads/"):
        return "branch"
    if ref.startswith("refs/tags/"):
        return "tag"
    return None


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _looks_like_url(remote: str) -> bool:
    return "://" in remote or "/" in remote or ":" in remote or remote.startswith(".")


@contextmanager
def _guard(what: str):
    """Audit plumbing never raises into the caller: log and carry on."""
    try:
        yield
    except Exception:  # noqa: BLE001
        _log.warning("gitaudit: could not determine %s", what, exc_info=True)


class Git:
    """Audited git commands for one repository.

    Args:
        repo_path: the work tree (or bare repository) commands run in; default
            the process's current directory at call time. ``clone`` runs in
            the current directory and clones into its ``dest``.
        git_binary: the git executable.
        env: environment variables added to (and overriding) ``os.environ`` and
            :data:`NON_INTERACTIVE_ENV` for every git process.
    """

    def __init__(self, repo_path: str | os.PathLike[str] | None = None, git_binary: str = "git",
                 env: Mapping[str, str] | None = None) -> None:
        self.repo_path = os.fspath(repo_path) if repo_path is not None else None
        self.git_binary = git_binary
        self.env = dict(env or {})

    # --- plumbing ------------------------------------------------------------------
    def _cwd(self) -> str:
        return self.repo_path or os.getcwd()

    def _env(self) -> dict[str, str]:
        env = dict(NON_INTERACTIVE_ENV)
        env.update(self.env)
        return env

    def _quiet(self, args: Sequence[str], cwd: str) -> GitResult | None:
        """A look-up: run git, ``None`` when it cannot even start."""
        try:
            return run_git(args, cwd=cwd, env={**self._env(), **LOOKUP_ENV}, git_binary=self.git_binary)
        except (OSError, ValueError):
            return None

    def head(self, cwd: str | None = None) -> tuple[str | None, str | None]:
        """Current ``(branch, revision)``: branch ``None`` when detached, revision ``None`` when unborn."""
        cwd = cwd or self._cwd()
        res = self._quiet(["rev-parse", "HEAD", "--symbolic-full-name", "HEAD"], cwd)
        if res is not None and res.ok:
            lines = res.stdout.split("\n")
            sha = lines[0] or None
            ref = lines[1] if len(lines) > 1 else ""
            return (_short_ref(ref) if ref.startswith("refs/heads/") else None), sha
        res = self._quiet(["symbolic-ref", "-q", "HEAD"], cwd)
        if res is not None and res.ok:
            return _short_ref(res.stdout.strip()), None
        return None, None

    def rev_parse(self, rev: str, cwd: str | None = None) -> str | None:
        """Full object name of ``rev`` peeled to a commit, ``None`` when it does not resolve."""
        res = self._quiet(["rev-parse", "-q", "--verify", "--end-of-options", f"{rev}^{{commit}}"],
                          cwd or self._cwd())
        return res.stdout.strip() if res is not None and res.ok and res.stdout.strip() else None

    def remote_url(self, remote: str = "origin", cwd: str | None = None) -> str | None:
        """The configured URL of ``remote`` (raw: may hold credentials), or ``remote`` itself if it is a URL/path."""
        if _looks_like_url(remote):
            return remote
        res = self._quiet(["config", "--get", f"remote.{remote}.url"], cwd or self._cwd())
        return res.stdout.strip() if res is not None and res.ok and res.stdout.strip() else None

    def _set_head(self, op: Operation, cwd: str) -> None:
        branch, sha = self.head(cwd)
        if branch:
            op.set(sc.VCS_REF_HEAD_NAME, branch)
            op.set(sc.VCS_REF_TYPE, "branch")
        if sha:
            op.set(sc.VCS_REF_HEAD_REVISION, sha)

    def _execute(
        self,
        event_name: str,
        args: Sequence[str],
        *,
        cwd: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        remote: str | None = "origin",
        before: Callable[[Operation, str], None] | None = None,
        after: Callable[[Operation, GitResult, str], None] | None = None,
        head_after: bool = True,
        conflicts_as: str | None = None,
        input: str | None = None,  # noqa: A002
        check: bool = False,
    ) -> OperationResult:
        cwd = cwd or self._cwd()
        # Fail closed before git runs: when a fail-closed spool cannot take the event,
        # the operation is refused (AuditUnavailableError) and nothing is half-recorded.
        ensure_audit_capacity()
        sub = subcommand_of(list(args)) or ""
        conflicts: list[Conflict] = []
        conflict_uids: list[str] = []
        with operation(event_name, **{sc.GIT_COMMAND: sub,
                                      sc.GIT_REPOSITORY_PATH: os.path.abspath(cwd)}) as op:
            if remote is not None:
                with _guard("the repository URL"):
                    op.update(repository_attributes(self.remote_url(remote, cwd)))
            op.update(attributes or {})
            if before is not None:
                with _guard(f"the state before git {sub}"):
                    before(op, cwd)
            res = run_git(args, cwd=cwd, env=self._env(), input=input, git_binary=self.git_binary)
            op.update({sc.GIT_ARGV: res.argv, sc.GIT_EXIT_CODE: res.exit_code})
            if head_after:
                with _guard("HEAD"):
                    self._set_head(op, cwd)
            if after is not None:
                with _guard(f"the result of git {sub}"):
                    after(op, res, cwd)
            if not res.ok:
                if conflicts_as:
                    with _guard("conflicts"):
                        conflicts = detect_conflicts(cwd, git_binary=self.git_binary, env=self._env())
                if conflicts:
                    op.set(sc.GIT_CONFLICT_COUNT, len(conflicts))
                    op.fail(ERROR_CONFLICT, sanitize_output(res.stdout + "\n" + res.stderr))
                    with _guard("conflict events"):
                        conflict_uids = self._emit_conflicts(op, cwd, conflicts, conflicts_as or sub)
                elif op.error_type is None:
                    op.fail(f"git.exit_{res.exit_code}", sanitize_output(res.stderr) or None)
            op.body = f"{' '.join(res.argv)} -> exit {res.exit_code}"
        result = OperationResult(
            event_name=str(event_name), uid=op.uid, exit_code=res.exit_code, stdout=res.stdout,
            stderr=res.stderr, argv=res.argv, duration_ms=res.duration_ms,
            attributes=dict(op.attributes), conflicts=tuple(conflicts),
            conflict_uids=tuple(conflict_uids),
        )
        if check and not result.ok:
            raise GitCommandError(res, uid=op.uid)
        return result

    @staticmethod
    def _emit_conflicts(op: Operation, cwd: str, conflicts: list[Conflict], name: str) -> list[str]:
        a = op.attributes
        carried = {k: a[k] for k in (sc.VCS_REPOSITORY_URL_FULL, sc.VCS_REPOSITORY_NAME,
                                     sc.VCS_PROVIDER_NAME, sc.GIT_REPOSITORY_PATH) if k in a}
        return emit_conflicts(
            cwd, conflicts=conflicts, operation=name,
            base_ref=a.get(sc.VCS_REF_BASE_NAME), base_revision=a.get(sc.VCS_REF_BASE_REVISION),
            head_ref=a.get(sc.VCS_REF_HEAD_NAME), head_revision=a.get(sc.VCS_REF_HEAD_REVISION),
            attributes=carried,
        )

    def _keep_branch(self, op: Operation, cwd: str) -> None:
        """Before: remember the branch (a stopped rebase leaves HEAD detached)."""
        branch, _ = self.head(cwd)
        if branch:
            op.set(sc.VCS_REF_HEAD_NAME, branch)
            op.set(sc.VCS_REF_TYPE, "branch")

    def _base(self, ref: str | None) -> Callable[[Operation, str], None]:
        def before(op: Operation, cwd: str) -> None:
            self._keep_branch(op, cwd)
            if ref:
                op.set(sc.VCS_REF_BASE_NAME, ref)
                op.set(sc.VCS_REF_BASE_REVISION, self.rev_parse(ref, cwd))
        return before

    # --- clone / fetch / pull --------------------------------------------------------
    def clone(self, url: str, dest: str | os.PathLike[str], *, branch: str | None = None,
              depth: int | None = None, bare: bool = False, extra_args: Sequence[str] = (),
              check: bool = False) -> OperationResult:
        """``git clone [--branch B] [--depth N] [--bare] <url> <dest>`` -> ``git.clone``.

        ``dest`` is relative to ``repo_path`` when given, else to the current
        directory. ``git.repository.path`` is the absolute ``dest``;
        ``git.clone.depth`` the depth asked for.
        """
        cwd = self.repo_path or os.getcwd()
        dest_abs = os.path.join(cwd, os.fspath(dest))
        args = ["clone"]
        if branch:
            args += ["--branch", branch]
        if depth is not None:
            args += ["--depth", str(int(depth))]
        if bare:
            args.append("--bare")
        args += [*extra_args, "--", url, os.fspath(dest)]
        attrs = {**repository_attributes(url), sc.GIT_CLONE_DEPTH: depth,
                 sc.GIT_REPOSITORY_PATH: os.path.abspath(dest_abs)}

        def after(op: Operation, res: GitResult, _cwd: str) -> None:
            if res.ok:
                self._set_head(op, dest_abs)
            else:
                op.set(sc.VCS_REF_HEAD_NAME, branch)

        return self._execute(sc.EventName.GIT_CLONE, args, cwd=cwd, attributes=attrs, remote=None,
                             head_after=False, after=after, check=check)

    def fetch(self, remote: str = "origin", refspec: str | Sequence[str] | None = None, *,
              prune: bool = False, tags: bool = False, depth: int | None = None,
              extra_args: Sequence[str] = (), check: bool = False) -> OperationResult:
        """``git fetch [--prune] [--tags] [--depth N] <remote> [<refspec>...]`` -> ``git.fetch``."""
        args = ["fetch"]
        if prune:
            args.append("--prune")
        if tags:
            args.append("--tags")
        if depth is not None:
            args += ["--depth", str(int(depth))]
        args += [*extra_args, remote, *_as_list(refspec)]
        return self._execute(sc.EventName.GIT_FETCH, args, remote=remote, check=check)

    def pull(self, remote: str = "origin", refspec: str | Sequence[str] | None = None, *,
             rebase: bool | None = None, ff_only: bool = False, extra_args: Sequence[str] = (),
             check: bool = False) -> OperationResult:
        """``git pull [--rebase|--no-rebase] [--ff-only] <remote> [<refspec>...]`` -> ``git.pull``.

        ``rebase=None`` leaves the choice to git's configuration. The base is
        ``<remote>/<refspec>`` (or the upstream) and the fetched ``FETCH_HEAD``
        commit; stopping on conflicts is ``git.conflict`` with
        ``conflict.detected`` events.
        """
        args = ["pull"]
        if rebase is not None:
            args.append("--rebase" if rebase else "--no-rebase")
        if ff_only:
            args.append("--ff-only")
        refs = _as_list(refspec)
        args += [*extra_args, remote, *refs]

        def after(op: Operation, res: GitResult, cwd: str) -> None:
            op.set(sc.VCS_REF_BASE_NAME, f"{remote}/{_short_ref(refs[0])}" if refs else None)
            op.set(sc.VCS_REF_BASE_REVISION, self.rev_parse("FETCH_HEAD", cwd))
            if op.attributes.get(sc.VCS_REF_BASE_NAME) is None:
                up = self._quiet(["rev-parse", "--abbrev-ref", "@{upstream}"], cwd)
                if up is not None and up.ok:
                    op.set(sc.VCS_REF_BASE_NAME, up.stdout.strip() or None)

        return self._execute(sc.EventName.GIT_PULL, args, remote=remote, before=self._base(None),
                             after=after, conflicts_as="pull", check=check)

    # --- commit / push -------------------------------------------------------------
    def commit(self, message: str, *, all: bool = False, allow_empty: bool = False,  # noqa: A002
               amend: bool = False, author: str | None = None, paths: Sequence[str] = (),
               extra_args: Sequence[str] = (), check: bool = False) -> OperationResult:
        """``git commit -F - [-a] [--allow-empty] [--amend] [--author A] [-- paths]`` -> ``git.commit``.

        The message is passed on standard input (never in ``git.argv``).
        ``vcs.ref.head.revision`` is the new commit; ``git.commit.count`` is 1.
        """
        args = ["commit", "-F", "-"]
        if all:
            args.append("--all")
        if allow_empty:
            args.append("--allow-empty")
        if amend:
            args.append("--amend")
        if author:
            args += ["--author", author]
        args += list(extra_args)
        if paths:
            args += ["--", *paths]

        def after(op: Operation, res: GitResult, _cwd: str) -> None:
            if res.ok:
                op.set(sc.GIT_COMMIT_COUNT, 1)

        return self._execute(sc.EventName.GIT_COMMIT, args, input=message, after=after, check=check)

    def push(self, remote: str = "origin", refspec: str | Sequence[str] | None = None, *,
             force: bool = False, force_with_lease: bool = False, delete: bool = False,
             set_upstream: bool = False, tags: bool = False, extra_args: Sequence[str] = (),
             check: bool = False) -> OperationResult:
        """``git push --porcelain [--force] [--delete] [-u] <remote> [<refspec>...]`` -> ``git.push``.

        From the porcelain ref lines: ``git.push.forced`` (a ``+`` line),
        ``git.push.deleted`` (``-``), ``git.push.rejected`` (``!``, outcome
        ``failure`` with ``error.type`` ``git.push.rejected``) and
        ``git.commit.count``, the commits the remote did not have: ``old..new``
        for updated refs, and for new refs (or a forced update whose old commit
        is unknown here) the commits not reachable from the remote's
        remote-tracking refs as they were before the push. ``vcs.ref.head.name`` is the
        first updated remote ref, ``vcs.ref.head.revision`` the commit sent.
        """
        args = ["push", "--porcelain"]
        if force:
            args.append("--force")
        if force_with_lease:
            args.append("--force-with-lease")
        if delete:
            args.append("--delete")
        if set_upstream:
            args.append("--set-upstream")
        if tags:
            args.append("--tags")
        args += [*extra_args, remote, *_as_list(refspec)]

        known: list[str] | None = None  # what the remote had, as far as we knew before pushing

        def before(_op: Operation, cwd: str) -> None:
            nonlocal known
            if not _looks_like_url(remote):
                res = self._quiet(["for-each-ref", "--format=%(objectname)", f"refs/remotes/{remote}/"], cwd)
                if res is not None and res.ok:
                    known = sorted(set(res.stdout.split()))

        def after(op: Operation, res: GitResult, cwd: str) -> None:
            self._push_attributes(op, res, cwd, known)

        return self._execute(sc.EventName.GIT_PUSH, args, remote=remote, before=before, after=after,
                             head_after=False, check=check)

    def _count(self, cwd: str, args: Sequence[str]) -> int | None:
        res = self._quiet(["rev-list", "--count", *args], cwd)
        if res is None or not res.ok:
            return None
        return int(res.stdout.strip() or 0)

    def _push_attributes(self, op: Operation, res: GitResult, cwd: str, known: list[str] | None) -> None:
        refs = parse_push_porcelain(res.stdout)
        op.update({
            sc.GIT_PUSH_FORCED: any(r.flag == "+" for r in refs),
            sc.GIT_PUSH_DELETED: any(r.flag == "-" for r in refs),
            sc.GIT_PUSH_REJECTED: any(r.flag == "!" for r in refs),
        })
        if any(r.flag == "!" for r in refs) and not res.ok:
            reasons = [f"{r.dst} {r.summary}" for r in refs if r.flag == "!"]
            op.fail(ERROR_PUSH_REJECTED, sanitize_output("; ".join(reasons) + "\n" + res.stderr))
        changed = [r for r in refs if r.flag != "="] or refs
        if changed:
            first = changed[0]
            op.set(sc.VCS_REF_HEAD_NAME, _short_ref(first.dst))
            op.set(sc.VCS_REF_TYPE, _ref_type(first.dst))
            if first.flag != "-" and first.src:
                op.set(sc.VCS_REF_HEAD_REVISION, self.rev_parse(first.src, cwd))
        # commits the remote did not have: old..new when we know old, else the
        # commits not reachable from the remote-tracking refs as they were before the push
        not_known = ["--not", *known] if known is not None else ["--not", "--remotes"]
        count = 0
        for r in refs:
            if r.flag not in (" ", "+", "*") or not r.src:
                continue
            n = None
            if r.flag in (" ", "+"):
                old, _, new = r.summary.split(" ")[0].replace("...", "..").partition("..")
                n = self._count(cwd, [f"{old}..{new}"])
            if n is None and _ref_type(r.dst) == "branch":
                n = self._count(cwd, [r.src, *not_known])
            count += n or 0
        op.set(sc.GIT_COMMIT_COUNT, count)

    # --- history rewriting and integration --------------------------------------------
    def _rebase_state(self, cwd: str) -> tuple[str | None, str | None]:
        """``(branch, onto)`` of the rebase in progress (``rebase-merge`` or ``rebase-apply``)."""
        res = self._quiet(["rev-parse", "--git-path", "rebase-merge", "--git-path", "rebase-apply"], cwd)
        if res is None or not res.ok:
            return None, None
        for d in res.stdout.split("\n"):
            d = os.path.join(cwd, d) if d and not os.path.isabs(d) else d
            if d and os.path.isdir(d):
                def read(name: str) -> str | None:
                    try:
                        with open(os.path.join(d, name), encoding="utf-8") as fh:
                            return fh.read().strip() or None
                    except OSError:
                        return None
                return _short_ref(read("head-name")), read("onto")
        return None, None

    def rebase(self, upstream: str | None = None, *, onto: str | None = None,
               continue_: bool = False, abort: bool = False, skip: bool = False,
               extra_args: Sequence[str] = (), check: bool = False) -> OperationResult:
        """``git rebase [--onto O] <upstream>`` or ``--continue``/``--abort``/``--skip`` -> ``git.rebase``.

        ``vcs.ref.head.name`` is the branch being rebased, ``vcs.ref.base.name``
        / ``.revision`` the upstream (for ``--continue``: the ``onto`` commit of
        the rebase in progress). Stopping on conflicts is ``git.conflict`` with
        ``conflict.detected`` events.
        """
        if continue_ or abort or skip:
            flag = "--continue" if continue_ else "--abort" if abort else "--skip"
            args = ["rebase", flag, *extra_args]

            def before(op: Operation, cwd: str) -> None:
                branch, onto_rev = self._rebase_state(cwd)
                op.set(sc.VCS_REF_HEAD_NAME, branch)
                op.set(sc.VCS_REF_BASE_REVISION, onto_rev)
            return self._execute(sc.EventName.GIT_REBASE, args, before=before,
                                 conflicts_as="rebase", check=check)
        args = ["rebase", *(["--onto", onto] if onto else []), *extra_args, *_as_list(upstream)]
        return self._execute(sc.EventName.GIT_REBASE, args, before=self._base(upstream or onto),
                             conflicts_as="rebase", check=check)

    def merge(self, ref: str | Sequence[str] | None = None, *, no_ff: bool = False,
              ff_only: bool = False, squash: bool = False, message: str | None = None,
              abort: bool = False, continue_: bool = False, extra_args: Sequence[str] = (),
              check: bool = False) -> OperationResult:
        """``git merge --no-edit [--no-ff|--ff-only|--squash] [-m M] <ref>`` -> ``git.merge``.

        ``vcs.ref.base.name`` / ``.revision`` is the merged ref; conflicts as for rebase.
        """
        if abort or continue_:
            args = ["merge", "--abort" if abort else "--continue", *extra_args]
            return self._execute(sc.EventName.GIT_MERGE, args, before=self._base(None),
                                 conflicts_as="merge", check=check)
        refs = _as_list(ref)
        args = ["merge", "--no-edit"]
        if no_ff:
            args.append("--no-ff")
        if ff_only:
            args.append("--ff-only")
        if squash:
            args.append("--squash")
        if message is not None:
            args += ["-m", message]
        args += [*extra_args, *refs]
        return self._execute(sc.EventName.GIT_MERGE, args, before=self._base(refs[0] if refs else None),
                             conflicts_as="merge", check=check)

    def cherry_pick(self, rev: str | Sequence[str] | None = None, *, no_commit: bool = False,
                    continue_: bool = False, abort: bool = False, extra_args: Sequence[str] = (),
                    check: bool = False) -> OperationResult:
        """``git cherry-pick [-n] <rev>...`` (or ``--continue``/``--abort``) -> ``git.cherry_pick``.

        ``vcs.ref.base.name`` / ``.revision`` is the (first) picked revision.
        """
        if continue_ or abort:
            args = ["cherry-pick", "--continue" if continue_ else "--abort", *extra_args]
            return self._execute(sc.EventName.GIT_CHERRY_PICK, args, before=self._base(None),
                                 conflicts_as="cherry-pick", check=check)
        revs = _as_list(rev)
        args = ["cherry-pick", *(["--no-commit"] if no_commit else []), *extra_args, *revs]
        return self._execute(sc.EventName.GIT_CHERRY_PICK, args,
                             before=self._base(revs[0] if revs else None),
                             conflicts_as="cherry-pick", check=check)

    # --- refs and the work tree ----------------------------------------------------------
    def checkout(self, ref: str, create: bool = False, *, start_point: str | None = None,
                 extra_args: Sequence[str] = (), check: bool = False) -> OperationResult:
        """``git checkout [-b] <ref> [<start_point>]`` -> ``git.checkout`` (head after the switch)."""
        args = ["checkout", *(["-b"] if create else []), *extra_args, ref,
                *([start_point] if start_point else [])]
        return self._execute(sc.EventName.GIT_CHECKOUT, args, check=check)

    def switch(self, branch: str, create: bool = False, *, start_point: str | None = None,
               detach: bool = False, extra_args: Sequence[str] = (), check: bool = False) -> OperationResult:
        """``git switch [-c] [--detach] <branch> [<start_point>]`` -> ``git.checkout`` (``git.command`` = switch)."""
        args = ["switch", *(["-c"] if create else []), *(["--detach"] if detach else []), *extra_args,
                branch, *([start_point] if start_point else [])]
        return self._execute(sc.EventName.GIT_CHECKOUT, args, check=check)

    def tag(self, name: str, rev: str | None = None, message: str | None = None, delete: bool = False,
            *, force: bool = False, check: bool = False) -> OperationResult:
        """``git tag [-a -F -] [-f] <name> [<rev>]`` or ``git tag -d <name>`` -> ``git.tag``.

        ``vcs.ref.head.name`` is the tag, ``vcs.ref.type`` ``tag``,
        ``vcs.ref.head.revision`` the tagged commit (before deletion, for
        ``delete``), ``git.ref.update.kind`` ``create`` or ``delete``.
        """
        attrs = {sc.VCS_REF_HEAD_NAME: name, sc.VCS_REF_TYPE: "tag",
                 sc.GIT_REF_UPDATE_KIND: "delete" if delete else "create"}
        tag_ref = f"refs/tags/{name}"
        if delete:
            def before(op: Operation, cwd: str) -> None:
                op.set(sc.VCS_REF_HEAD_REVISION, self.rev_parse(tag_ref, cwd))
            return self._execute(sc.EventName.GIT_TAG, ["tag", "-d", name], attributes=attrs,
                                 before=before, head_after=False, check=check)
        args = ["tag", *(["-a", "-F", "-"] if message is not None else []), *(["-f"] if force else []),
                name, *([rev] if rev else [])]

        def after(op: Operation, res: GitResult, cwd: str) -> None:
            if res.ok:
                op.set(sc.VCS_REF_HEAD_REVISION, self.rev_parse(tag_ref, cwd))
        return self._execute(sc.EventName.GIT_TAG, args, attributes=attrs, input=message, after=after,
                             head_after=False, check=check)

    def branch_delete(self, name: str, force: bool = False, *, check: bool = False) -> OperationResult:
        """``git branch -d|-D <name>`` -> ``git.branch.delete``.

        ``vcs.ref.head.name`` is the branch, ``vcs.ref.head.revision`` the commit
        it pointed at before deletion.
        """
        attrs = {sc.VCS_REF_HEAD_NAME: name, sc.VCS_REF_TYPE: "branch", sc.GIT_REF_UPDATE_KIND: "delete"}

        def before(op: Operation, cwd: str) -> None:
            op.set(sc.VCS_REF_HEAD_REVISION, self.rev_parse(f"refs/heads/{name}", cwd))
        return self._execute(sc.EventName.GIT_BRANCH_DELETE, ["branch", "-D" if force else "-d", name],
                             attributes=attrs, before=before, head_after=False, check=check)

    def reset(self, rev: str = "HEAD", mode: str = "mixed", *, check: bool = False) -> OperationResult:
        """``git reset --<mode> <rev>`` -> ``git.reset``.

        ``git.ref.old_revision`` is HEAD before, ``vcs.ref.head.revision`` after.

        Raises:
            ValueError: ``mode`` is not one of soft, mixed, hard, merge, keep.
        """
        if mode not in RESET_MODES:
            raise ValueError(f"reset mode must be one of {sorted(RESET_MODES)}, not {mode!r}")

        def before(op: Operation, cwd: str) -> None:
            op.set(sc.GIT_REF_OLD_REVISION, self.head(cwd)[1])
        return self._execute(sc.EventName.GIT_RESET, ["reset", f"--{mode}", rev], before=before,
                             check=check)

    # --- anything else -----------------------------------------------------------------
    def merge_tree(self, ours: str, theirs: str, *, check: bool = False) -> OperationResult:
        """``git merge-tree --write-tree`` of ``ours`` and ``theirs`` -> ``git.command``.

        Nothing changes in the repository. Conflicts make the event ``failure``
        / ``git.conflict`` with ``git.conflict.count`` and emit one
        ``conflict.detected`` per file (``git.command`` = ``merge-tree``).
        """
        args = ["merge-tree", "--write-tree", "-z", ours, theirs]
        found: list[Conflict] = []

        def before(op: Operation, _cwd: str) -> None:
            op.set(sc.VCS_REF_HEAD_NAME, ours)
            op.set(sc.VCS_REF_BASE_NAME, theirs)

        def after(op: Operation, res: GitResult, cwd: str) -> None:
            op.set(sc.VCS_REF_HEAD_REVISION, self.rev_parse(ours, cwd))
            op.set(sc.VCS_REF_BASE_REVISION, self.rev_parse(theirs, cwd))
            if res.exit_code == 1 and res.stdout[:1] not in ("", "\0"):
                a = op.attributes
                carried = {k: a[k] for k in (sc.VCS_REPOSITORY_URL_FULL, sc.VCS_REPOSITORY_NAME,
                                             sc.VCS_PROVIDER_NAME, sc.GIT_REPOSITORY_PATH) if k in a}
                found.extend(conflicts_from_merge_tree(cwd, res.stdout, git_binary=self.git_binary,
                                                       env=self._env()))
                if not found:
                    return
                op.set(sc.GIT_CONFLICT_COUNT, len(found))
                op.fail(ERROR_CONFLICT, f"{len(found)} conflicted file(s)")
                uids.extend(emit_conflicts(cwd, conflicts=found, operation="merge-tree", head_ref=ours,
                                           base_ref=theirs, head_revision=a.get(sc.VCS_REF_HEAD_REVISION),
                                           base_revision=a.get(sc.VCS_REF_BASE_REVISION),
                                           attributes=carried))

        uids: list[str] = []
        result = self._execute(sc.EventName.GIT_COMMAND, args, before=before, after=after,
                               head_after=False, check=check)
        return replace(result, conflicts=tuple(found), conflict_uids=tuple(uids))

    def command(self, *args: str, input: str | None = None, check: bool = False) -> OperationResult:  # noqa: A002
        """Run any git command audited: ``Git(...).command("gc", "--auto")``.

        The event is named by the subcommand as for the ``gitaudit git`` wrapper
        (``push`` -> ``git.push``, ``status`` -> ``git.command``, ...), with
        ``git.command`` = the subcommand; a merge, rebase, cherry-pick, pull,
        revert, am or stash that stops on conflicts is ``git.conflict``.
        """
        sub = subcommand_of(list(args)) or ""
        return self._execute(event_name_for(list(args)), list(args), input=input,
                             conflicts_as=sub if sub in _CONFLICT_COMMANDS else None, check=check)
