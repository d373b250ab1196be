"""Audit GitPython: every clone, fetch, pull, push, commit, rebase and merge made
through `GitPython <https://gitpython.readthedocs.io>`_ emits one audit event.

Usage::

    from gitaudit.instrumentation.gitpython_instrumentor import GitPythonInstrumentor
    GitPythonInstrumentor().instrument()

    repo = git.Repo.clone_from("https://github.com/org/repo.git", "/tmp/repo")  # git.clone
    repo.remote().push("main")                                                    # git.push

or, with no code change, ``opentelemetry-instrument python app.py``: the
instrumentor is registered under the ``opentelemetry_instrumentor`` entry point
``gitpython``. ``uninstrument()`` restores GitPython's own functions.

GitPython is an optional extra (``pip install gitaudit[gitpython]``): this module
imports without it, and ``instrumentation_dependencies()`` (``GitPython >= 3.1``)
keeps the auto-instrumentation from activating when it is missing.

What is audited, and the event each emits (DESIGN.md section 3):

=====================================  ======================================
``git.Repo.clone_from`` (classmethod)  ``git.clone``
``git.Remote.fetch``                   ``git.fetch``
``git.Remote.pull``                    ``git.pull``
``git.Remote.push``                    ``git.push``
``git.IndexFile.commit``               ``git.commit``
``repo.git.<command>(...)``            for ``rebase``, ``merge``,
                                       ``cherry_pick``, ``checkout``/``switch``,
                                       ``tag``, ``reset`` and ``branch -d``:
                                       ``git.rebase``, ``git.merge``, ...
                                       (``git.cmd.Git._call_process``)
=====================================  ======================================

Git commands that GitPython runs *inside* one of the audited calls (the
``git push`` under ``Remote.push``, the ``rev-parse`` this module runs to read
revisions) are not audited again: a :mod:`contextvars` flag marks "inside an
audited GitPython call". Other ``repo.git.*`` commands (``status``, ``log``,
...) are not audited here; the ``gitaudit git`` wrapper and the trace2 agent
cover the rest of git.

Attributes, with the names of :mod:`gitaudit.instrumentation.semconv`:

* repository: ``vcs.repository.url.full`` (credentials removed),
  ``vcs.repository.name``, ``vcs.provider.name`` from the remote URL;
  ``git.repository.path`` (the work tree or git dir);
* refs: ``vcs.ref.head.name`` = the branch being changed (the current branch
  after rebase/merge/cherry-pick/reset/checkout/commit/pull, the pushed ref
  for push), ``vcs.ref.head.revision`` = its revision afterwards (for commit:
  the new commit's hexsha); ``vcs.ref.base.name`` / ``.revision`` = the operand
  (the upstream of a rebase, the merged ref, the cherry-picked commit, the
  reset target); ``git.ref.old_revision`` = HEAD before (or the remote ref
  before a push); ``vcs.ref.type`` = ``branch`` or ``tag``;
* push flags, read from the returned ``PushInfoList`` (push does *not* raise
  when a ref is rejected): ``git.push.forced`` (``FORCED_UPDATE``),
  ``git.push.deleted`` (``DELETED``), ``git.push.rejected`` (``REJECTED``,
  ``REMOTE_REJECTED``, ``REMOTE_FAILURE``, ``ERROR``, or
  ``PushInfoList.error``); a rejected push has outcome ``failure`` and
  ``error.type`` ``git.push_rejected``. A push of several refs is one event
  whose ref attributes are lists (one entry per ref, in git's order) and whose
  flags are true when true for any ref;
* outcome: ``audit.duration_ms`` (wall time of the call, ms);
  ``git.GitCommandError`` gives outcome ``failure`` with
  ``error.type = git.exit_<status>`` and ``git.exit_code``, the trimmed
  stderr (credentials removed) in ``audit.error.message``; any other exception
  gives ``error.type`` = its class name. The application's exception is
  re-raised unchanged.

A rebase, merge, cherry-pick or pull that stops on conflicts also emits one
``conflict.detected`` per conflicted file
(:func:`gitaudit.instrumentation.conflicts.emit_conflicts`), in the same trace.

``repo.git.<command>(..., as_process=True)`` returns before git ends: its event
records the launch (outcome ``success``, no exit status).

Audit plumbing never raises into the application: a failure while building or
emitting an event is logged (class name only) and swallowed.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap

from . import semconv as sc
from .events import emit_event, ensure_trace
from .git_runner import sanitize_argv, sanitize_output
from .git_urls import repository_attributes

_log = logging.getLogger(__name__)

_INSIDE: contextvars.ContextVar[bool] = contextvars.ContextVar("gitaudit_gitpython_inside", default=False)

#: ``Git._call_process`` method names (dashes as underscores) -> EventName.
_COMMAND_EVENTS: Mapping[str, str] = {
    "rebase": sc.EventName.GIT_REBASE,
    "merge": sc.EventName.GIT_MERGE,
    "cherry_pick": sc.EventName.GIT_CHERRY_PICK,
    "checkout": sc.EventName.GIT_CHECKOUT,
    "switch": sc.EventName.GIT_CHECKOUT,
    "tag": sc.EventName.GIT_TAG,
    "reset": sc.EventName.GIT_RESET,
    "branch": sc.EventName.GIT_BRANCH_DELETE,  # only with -d / -D / --delete
}
#: Commands that can stop on merge conflicts.
_CONFLICTING = frozenset({"rebase", "merge", "cherry_pick"})
#: Commands whose HEAD before / after is read (old and new revision).
_MOVES_HEAD = frozenset({"rebase", "merge", "cherry_pick", "checkout", "switch", "reset"})

_PUSH_REJECTED = "git.push_rejected"
_MAX_MESSAGE_CHARS = 1000


def _short_ref(ref: str) -> tuple[str, str | None]:
    """``refs/heads/x`` -> (``x``, ``branch``); ``refs/tags/v`` -> (``v``, ``tag``)."""
    for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if ref.startswith(prefix):
            return ref[len(prefix):], kind
    return ref, None


def _safe(fn: Callable[[], Any], default: Any = None) -> Any:
    """Run audit plumbing ``fn``; on any error log its class and return ``default``."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 -- audit plumbing must not raise
        _log.debug("gitaudit: GitPython attribute read failed: %s", type(exc).__name__)
        return default


def _failure_of(exc: BaseException) -> tuple[str, dict[str, Any]]:
    """``(error.type, extra attributes)`` of an exception raised by the audited call."""
    import git

    if isinstance(exc, git.GitCommandError):
        status = exc.status
        attrs: dict[str, Any] = {}
        if isinstance(status, int):
            attrs[sc.GIT_EXIT_CODE] = status
        stderr = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
        message = sanitize_output(stderr.replace("stderr: ", "", 1).strip(" '\n"), _MAX_MESSAGE_CHARS)
        if message:
            attrs[sc.AUDIT_ERROR_MESSAGE] = message
        return f"git.exit_{status}", attrs
    return type(exc).__name__, {}


def _emit(event: str, attrs: Mapping[str, Any], start_ns: int, t0: int, *,
          outcome: str = sc.Outcome.SUCCESS, error_type: str | None = None) -> None:
    """Emit one event; never raises."""
    try:
        emit_event(
            event,
            attributes={k: v for k, v in attrs.items() if v is not None and v != []},
            outcome=outcome,
            error_type=error_type,
            duration_ms=(time.perf_counter_ns() - t0) / 1e6,
            timestamp_ns=start_ns,
        )
    except Exception as exc:  # noqa: BLE001
        _log.warning("gitaudit: could not emit %s: %s", event, type(exc).__name__)


def _audit(
    event: str,
    call: Callable[[], Any],
    before: Callable[[], dict[str, Any]],
    after: Callable[[Any, dict[str, Any]], tuple[str, str | None]] | None = None,
    on_failure: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """Run ``call`` as one audited GitPython operation.

    Args:
        event: the EventName.
        call: runs the wrapped function.
        before: returns the attributes known before the call.
        after: ``after(result, attrs)`` adds attributes from the result and
            returns ``(outcome, error_type)``.
        on_failure: called with the attributes when ``call`` raised (conflicts).

    Returns:
        ``call()``'s result; its exception is re-raised unchanged.
    """
    if _INSIDE.get():
        return call()
    token = _INSIDE.set(True)
    try:
        with ensure_trace(str(event)):
            start_ns, t0 = time.time_ns(), time.perf_counter_ns()
            attrs: dict[str, Any] = _safe(before, {}) or {}
            try:
                result = call()
            except Exception as exc:
                error_type, extra = _safe(lambda: _failure_of(exc), (type(exc).__name__, {}))
                attrs.update(extra)
                if on_failure is not None:
                    _safe(lambda: on_failure(attrs))
                _emit(event, attrs, start_ns, t0, outcome=sc.Outcome.FAILURE, error_type=error_type)
                raise
            outcome, error_type = sc.Outcome.SUCCESS, None
            if after is not None:
                outcome, error_type = _safe(lambda: after(result, attrs), (outcome, None))
            _emit(event, attrs, start_ns, t0, outcome=outcome, error_type=error_type)
            return result
    finally:
        _INSIDE.reset(token)


# --- helpers reading repository state (run inside the flag: not audited) ----------


def _repo_path(repo: Any) -> str | None:
    return _safe(lambda: os.path.abspath(repo.working_tree_dir or repo.git_dir))


def _remote_attrs(remote: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(_safe(lambda: repository_attributes(remote.url), {}) or {})
    attrs[sc.GIT_REPOSITORY_PATH] = _repo_path(remote.repo)
    return attrs


def _origin_attrs(repo_dir: str | None, git_cmd: Any) -> dict[str, Any]:
    """Repository attributes of a ``Git`` object's directory (URL of ``origin`` if any)."""
    attrs: dict[str, Any] = {sc.GIT_REPOSITORY_PATH: repo_dir}
    url = _safe(lambda: git_cmd.config("--get", "remote.origin.url").strip())
    if url:
        attrs.update(_safe(lambda: repository_attributes(url), {}) or {})
    return attrs


def _head_state(git_cmd: Any) -> tuple[str | None, str | None]:
    """``(current branch short name or None when detached, HEAD hexsha or None when unborn)``."""
    out = _safe(lambda: git_cmd.rev_parse("HEAD", "--symbolic-full-name", "HEAD"))
    if out is None:  # unborn branch: no HEAD commit yet
        ref = _safe(lambda: git_cmd.symbolic_ref("-q", "HEAD").strip()) or ""
        return (_short_ref(ref)[0] if ref.startswith("refs/heads/") else None), None
    lines = out.split()
    revision = lines[0] if lines else None
    ref = lines[1] if len(lines) > 1 else ""
    return (ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None), revision


def _resolve(git_cmd: Any, rev: str) -> str | None:
    return _safe(lambda: git_cmd.rev_parse("--verify", "-q", f"{rev}^{{commit}}").strip() or None)


#: Options whose value is the next argument, per command (so it is not taken for an operand).
_VALUE_OPTIONS: Mapping[str, frozenset[str]] = {
    "tag": frozenset({"-m", "-F", "-u", "--message", "--file", "--local-user"}),
    "merge": frozenset({"-m", "-F", "-s", "-X", "--file", "--strategy", "--strategy-option"}),
    "rebase": frozenset({"--onto", "-s", "-X", "-x", "--exec", "--strategy", "--strategy-option"}),
    "cherry_pick": frozenset({"-m", "--mainline", "-s", "-X", "--strategy", "--strategy-option"}),
    "checkout": frozenset({"-b", "-B", "--orphan"}),
    "switch": frozenset({"-c", "-C", "--orphan"}),
}


def _positionals(args: Sequence[Any], value_options: frozenset[str] = frozenset()) -> list[str]:
    """Non-option operands of a ``repo.git.<cmd>(...)`` call, before any ``--``."""
    flat = []
    for a in args:
        if a is not None:
            flat.extend(str(x) for x in (a if isinstance(a, (list, tuple)) else [a]))
    out: list[str] = []
    skip = False
    for s in flat:
        if skip:
            skip = False
            continue
        if s == "--":
            break
        if s.startswith("-"):
            skip = s in value_options
            continue
        out.append(s)
    return out


# --- the wrappers -----------------------------------------------------------------


def _wrap_clone_from(wrapped: Callable[..., Any], cls: Any, args: tuple, kwargs: dict) -> Any:
    def before() -> dict[str, Any]:
        url = kwargs.get("url", args[0] if args else None)
        to_path = kwargs.get("to_path", args[1] if len(args) > 1 else None)
        attrs: dict[str, Any] = dict(repository_attributes(os.fspath(url)) if url else {})
        if to_path is not None:
            attrs[sc.GIT_REPOSITORY_PATH] = os.path.abspath(os.fspath(to_path))
        depth = kwargs.get("depth")
        if depth is not None:
            attrs[sc.GIT_CLONE_DEPTH] = int(depth)
        branch = kwargs.get("branch") or kwargs.get("b")
        if branch:
            attrs[sc.VCS_REF_HEAD_NAME] = str(branch)
        return attrs

    def after(repo: Any, attrs: dict[str, Any]) -> tuple[str, None]:
        branch, revision = _head_state(repo.git)
        if branch:
            attrs[sc.VCS_REF_HEAD_NAME] = branch
            attrs[sc.VCS_REF_TYPE] = "branch"
        attrs[sc.VCS_REF_HEAD_REVISION] = revision
        return sc.Outcome.SUCCESS, None

    return _audit(sc.EventName.GIT_CLONE, lambda: wrapped(*args, **kwargs), before, after)


def _wrap_fetch(wrapped: Callable[..., Any], remote: Any, args: tuple, kwargs: dict) -> Any:
    refspec = kwargs.get("refspec", args[0] if args else None)

    def before() -> dict[str, Any]:
        attrs = _remote_attrs(remote)
        if isinstance(refspec, str):
            attrs[sc.VCS_REF_HEAD_NAME] = refspec
        elif isinstance(refspec, (list, tuple)):
            attrs[sc.VCS_REF_HEAD_NAME] = [str(r) for r in refspec]
        return attrs

    def after(infos: Any, attrs: dict[str, Any]) -> tuple[str, None]:
        if len(infos) == 1:
            attrs[sc.VCS_REF_HEAD_REVISION] = _safe(lambda: infos[0].commit.hexsha)
        return sc.Outcome.SUCCESS, None

    return _audit(sc.EventName.GIT_FETCH, lambda: wrapped(*args, **kwargs), before, after)


def _conflict_hook(operation: str, repo_dir: str | None) -> Callable[[dict[str, Any]], None]:
    """A failure callback emitting ``conflict.detected`` per conflicted file of ``repo_dir``."""

    def on_failure(attrs: dict[str, Any]) -> None:
        if not repo_dir:
            return
        from .conflicts import emit_conflicts

        common = {k: attrs[k] for k in (sc.VCS_REPOSITORY_URL_FULL, sc.VCS_REPOSITORY_NAME,
                                         sc.VCS_PROVIDER_NAME) if k in attrs}
        uids = emit_conflicts(
            repo_dir,
            operation=operation,
            head_ref=attrs.get(sc.VCS_REF_HEAD_NAME),
            head_revision=attrs.get(sc.GIT_REF_OLD_REVISION),
            base_ref=attrs.get(sc.VCS_REF_BASE_NAME),
            base_revision=attrs.get(sc.VCS_REF_BASE_REVISION),
            attributes=common,
        )
        if uids:
            attrs[sc.GIT_CONFLICT_COUNT] = len(uids)

    return on_failure


def _wrap_pull(wrapped: Callable[..., Any], remote: Any, args: tuple, kwargs: dict) -> Any:
    refspec = kwargs.get("refspec", args[0] if args else None)
    repo_dir = _repo_path(remote.repo)

    def before() -> dict[str, Any]:
        attrs = _remote_attrs(remote)
        branch, revision = _head_state(remote.repo.git)
        attrs[sc.VCS_REF_HEAD_NAME] = branch
        attrs[sc.GIT_REF_OLD_REVISION] = revision
        if isinstance(refspec, str):
            attrs[sc.VCS_REF_BASE_NAME] = refspec
        return attrs

    def after(_infos: Any, attrs: dict[str, Any]) -> tuple[str, None]:
        branch, revision = _head_state(remote.repo.git)
        attrs[sc.VCS_REF_HEAD_NAME] = branch
        attrs[sc.VCS_REF_HEAD_REVISION] = revision
        if branch:
            attrs[sc.VCS_REF_TYPE] = "branch"
        return sc.Outcome.SUCCESS, None

    return _audit(sc.EventName.GIT_PULL, lambda: wrapped(*args, **kwargs), before, after,
                  _conflict_hook("pull", repo_dir))


def _push_ref_details(info: Any, repo: Any) -> tuple[str, str | None, str | None, str | None]:
    """``(short name, ref type, new hexsha or None, old hexsha or None)`` of one ``PushInfo``."""
    name, kind = _short_ref(str(info.remote_ref_string))
    new = _safe(lambda: info.local_ref.commit.hexsha) if info.local_ref is not None else None
    old_short = getattr(info, "_old_commit_sha", None)
    old = None
    if old_short:
        old = _safe(lambda: repo.rev_parse(old_short).hexsha, old_short)
    return name, kind, new, old


def _wrap_push(wrapped: Callable[..., Any], remote: Any, args: tuple, kwargs: dict) -> Any:
    import git

    def before() -> dict[str, Any]:
        attrs = _remote_attrs(remote)
        if kwargs.get("force") or kwargs.get("f") or kwargs.get("force_with_lease"):
            attrs[sc.GIT_PUSH_FORCED] = True
        return attrs

    def after(infos: Any, attrs: dict[str, Any]) -> tuple[str, str | None]:
        pi = git.PushInfo
        rejected_mask = pi.REJECTED | pi.REMOTE_REJECTED | pi.REMOTE_FAILURE | pi.ERROR
        names, kinds, news, olds, messages = [], [], [], [], []
        forced = deleted = rejected = False
        for info in infos:
            flags = int(info.flags)
            forced |= bool(flags & pi.FORCED_UPDATE)
            deleted |= bool(flags & pi.DELETED)
            if flags & rejected_mask:
                rejected = True
                messages.append(f"{info.remote_ref_string}: {str(info.summary).strip()}")
            name, kind, new, old = _push_ref_details(info, remote.repo)
            names.append(name)
            kinds.append(kind or "")
            news.append(new or "")
            olds.append(old or "")
        if getattr(infos, "error", None) is not None:
            rejected = True
        single = len(names) == 1
        attrs[sc.VCS_REF_HEAD_NAME] = names[0] if single else names
        attrs[sc.VCS_REF_TYPE] = (kinds[0] or None) if single else (kinds if any(kinds) else None)
        attrs[sc.VCS_REF_HEAD_REVISION] = (news[0] or None) if single else (news if any(news) else None)
        attrs[sc.GIT_REF_OLD_REVISION] = (olds[0] or None) if single else (olds if any(olds) else None)
        attrs[sc.GIT_PUSH_FORCED] = forced or bool(attrs.get(sc.GIT_PUSH_FORCED))
        attrs[sc.GIT_PUSH_DELETED] = deleted
        attrs[sc.GIT_PUSH_REJECTED] = rejected
        if rejected:
            if messages:
                attrs[sc.AUDIT_ERROR_MESSAGE] = sanitize_output("\n".join(messages), _MAX_MESSAGE_CHARS)
            return sc.Outcome.FAILURE, _PUSH_REJECTED
        return sc.Outcome.SUCCESS, None

    return _audit(sc.EventName.GIT_PUSH, lambda: wrapped(*args, **kwargs), before, after)


def _wrap_index_commit(wrapped: Callable[..., Any], index: Any, args: tuple, kwargs: dict) -> Any:
    repo = index.repo

    def before() -> dict[str, Any]:
        attrs = _origin_attrs(_repo_path(repo), repo.git)
        branch, revision = _head_state(repo.git)
        attrs[sc.GIT_REF_OLD_REVISION] = revision
        if branch and kwargs.get("head", True):
            attrs[sc.VCS_REF_HEAD_NAME] = branch
            attrs[sc.VCS_REF_TYPE] = "branch"
        return attrs

    def after(commit: Any, attrs: dict[str, Any]) -> tuple[str, None]:
        attrs[sc.VCS_REF_HEAD_REVISION] = commit.hexsha
        return sc.Outcome.SUCCESS, None

    return _audit(sc.EventName.GIT_COMMIT, lambda: wrapped(*args, **kwargs), before, after)


def _is_branch_delete(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    if kwargs.get("d") or kwargs.get("D") or kwargs.get("delete"):
        return True
    for a in args:
        s = str(a)
        if s == "--":
            break
        if s == "--delete" or (s[:1] == "-" and s[1:2] != "-" and ("d" in s[1:] or "D" in s[1:])):
            return True
    return False


def _is_tag_listing(args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    if kwargs.get("l") or kwargs.get("list") or kwargs.get("v") or kwargs.get("verify"):
        return True
    strs = [str(a) for a in args if a is not None]
    if any(s in ("-l", "--list", "-v", "--verify") or s.startswith("--list=") for s in strs):
        return True
    return not _positionals(args)


def _command_argv(git_cmd: Any, method: str, args: tuple, kwargs: dict) -> list[str]:
    """The git argv (without ``git``) GitPython will run, sanitized."""
    from git.cmd import execute_kwargs

    opts = {k: v for k, v in kwargs.items() if k not in execute_kwargs and k != "insert_kwargs_after"}
    opt_args = git_cmd.transform_kwargs(**opts)
    ext_args = git_cmd._unpack_args([a for a in args if a is not None])
    return sanitize_argv([method.replace("_", "-"), *opt_args, *ext_args])


def _wrap_call_process(wrapped: Callable[..., Any], git_cmd: Any, args: tuple, kwargs: dict) -> Any:
    if _INSIDE.get() or not args:
        return wrapped(*args, **kwargs)
    method = str(args[0]).replace("-", "_")
    event = _COMMAND_EVENTS.get(method)
    cmd_args, cmd_kwargs = args[1:], kwargs
    if event is None:
        return wrapped(*args, **kwargs)
    if method == "branch" and not _is_branch_delete(cmd_args, cmd_kwargs):
        return wrapped(*args, **kwargs)
    if method == "tag" and _is_tag_listing(cmd_args, cmd_kwargs):
        return wrapped(*args, **kwargs)

    repo_dir = _safe(lambda: os.path.abspath(git_cmd.working_dir or os.getcwd()))
    operands = _positionals(cmd_args, _VALUE_OPTIONS.get(method, frozenset()))

    def before() -> dict[str, Any]:
        attrs = _origin_attrs(repo_dir, git_cmd)
        attrs[sc.GIT_COMMAND] = method.replace("_", "-")
        attrs[sc.GIT_ARGV] = _safe(lambda: _command_argv(git_cmd, method, cmd_args, cmd_kwargs))
        if method in _MOVES_HEAD:
            branch, revision = _head_state(git_cmd)
            attrs[sc.VCS_REF_HEAD_NAME] = branch
            attrs[sc.GIT_REF_OLD_REVISION] = revision
            if operands and method in ("rebase", "merge", "cherry_pick", "reset"):
                attrs[sc.VCS_REF_BASE_NAME] = operands[0]
                attrs[sc.VCS_REF_BASE_REVISION] = _resolve(git_cmd, operands[0])
        elif method == "tag":
            attrs[sc.VCS_REF_HEAD_NAME] = operands[0]
            attrs[sc.VCS_REF_TYPE] = "tag"
            if _is_branch_delete(cmd_args, cmd_kwargs):  # tag -d
                attrs[sc.GIT_REF_UPDATE_KIND] = "delete"
                attrs[sc.GIT_REF_OLD_REVISION] = _resolve(git_cmd, f"refs/tags/{operands[0]}")
            else:
                attrs[sc.GIT_REF_UPDATE_KIND] = "create"
        elif method == "branch":
            attrs[sc.VCS_REF_HEAD_NAME] = operands[0] if len(operands) == 1 else operands
            attrs[sc.VCS_REF_TYPE] = "branch"
            attrs[sc.GIT_REF_UPDATE_KIND] = "delete"
            if len(operands) == 1:
                attrs[sc.GIT_REF_OLD_REVISION] = _resolve(git_cmd, f"refs/heads/{operands[0]}")
        return attrs

    def after(_result: Any, attrs: dict[str, Any]) -> tuple[str, None]:
        if method in _MOVES_HEAD:
            branch, revision = _head_state(git_cmd)
            attrs[sc.VCS_REF_HEAD_NAME] = branch
            attrs[sc.VCS_REF_HEAD_REVISION] = revision
            if branch:
                attrs[sc.VCS_REF_TYPE] = "branch"
        elif method == "tag" and attrs.get(sc.GIT_REF_UPDATE_KIND) == "create":
            attrs[sc.VCS_REF_HEAD_REVISION] = _resolve(git_cmd, f"refs/tags/{operands[0]}")
        return sc.Outcome.SUCCESS, None

    on_failure = _conflict_hook(method.replace("_", "-"), repo_dir) if method in _CONFLICTING else None
    return _audit(event, lambda: wrapped(*args, **kwargs), before, after, on_failure)


_TARGETS: tuple[tuple[str, str, str, Callable[..., Any]], ...] = (
    ("git.remote", "Remote", "fetch", _wrap_fetch),
    ("git.remote", "Remote", "pull", _wrap_pull),
    ("git.remote", "Remote", "push", _wrap_push),
    ("git.index.base", "IndexFile", "commit", _wrap_index_commit),
    ("git.cmd", "Git", "_call_process", _wrap_call_process),
)


class GitPythonInstrumentor(BaseInstrumentor):
    """OpenTelemetry instrumentor that audits GitPython operations.

    ``instrument()`` wraps GitPython's functions (see the module docstring);
    ``uninstrument()`` restores them. Both are idempotent (``BaseInstrumentor``
    ignores a second call). Events go through gitaudit's logger provider
    (:func:`gitaudit.instrumentation.configure`, or the global OTel one).
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """The instrumented library: ``("GitPython >= 3.1",)``."""
        return ("GitPython >= 3.1",)

    def _instrument(self, **kwargs: Any) -> None:
        import wrapt

        import git  # noqa: F401 -- the optional dependency, imported only here

        wrapt.wrap_function_wrapper("git.repo.base", "Repo.clone_from", _wrap_clone_from)
        for module, cls, attr, wrapper in _TARGETS:
            wrapt.wrap_function_wrapper(module, f"{cls}.{attr}", wrapper)

    def _uninstrument(self, **kwargs: Any) -> None:
        import git

        # clone_from is a classmethod: getattr() would return a *bound* wrapper, and
        # opentelemetry's unwrap() would put a bound method back on the class.
        descriptor = vars(git.Repo).get("clone_from")
        wrapped = getattr(descriptor, "__wrapped__", None)
        if wrapped is not None:
            git.Repo.clone_from = wrapped
        for module, cls, attr, _ in _TARGETS:
            unwrap(f"{module}.{cls}", attr)


__all__ = ["GitPythonInstrumentor"]
