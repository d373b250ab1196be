"""Server-side git hooks: one ``git.ref.update`` audit event per ref a push updates.

Installed into a bare repository by ``gitaudit hooks install <bare-repo>`` (see
:mod:`gitaudit.instrumentation.hook_install`), two small shell hooks call this
module as ``<python> -m gitaudit.instrumentation.hooks <hook-name>``:

``post-receive``
    runs after ``git receive-pack`` updated the refs; it reads
    ``<old> <new> <ref>`` lines on stdin (https://git-scm.com/docs/githooks#post-receive)
    and emits one ``git.ref.update`` with outcome ``success`` per ref.
``pre-receive``
    is only handed to Python when a pre-receive hook that was already there
    (chained) rejected the push: each ref of the push is then recorded with
    outcome ``denied``. Without a chained hook the shell script exits at once.

Why not ``reference-transaction``: measured on git 2.39 it fires for every
local ref change too -- ``git pack-refs --all`` reports every packed ref as a
``0000... -> <sha>`` creation, deleting a packed ref runs it twice (once with
``0000 -> 0000``), a non-atomic push runs it once per ref -- and the hook sees no
environment variable that tells a push from a local update. ``post-receive``
runs for pushes only, once per push, after the refs moved. A local
``git update-ref`` inside the bare repository is therefore not recorded.

Attributes of each event (names from :mod:`gitaudit.instrumentation.semconv`):

==============================  ==================================================
``vcs.ref.head.name``           short ref name (``main``, ``v1.0``; other refs whole)
``vcs.ref.type``                ``branch`` (``refs/heads/``) or ``tag`` (``refs/tags/``)
``vcs.ref.head.revision``       the new object id (absent for a delete)
``git.ref.old_revision``        the old object id (absent for a create)
``git.ref.update.kind``         ``create`` | ``update`` | ``delete`` | ``force-update``:
                                force when old is not an ancestor of new
                                (``git merge-base --is-ancestor``), or when that
                                cannot be decided (old object missing)
``git.ref.commits_dropped``     force-update: ``git rev-list --count new..old``;
                                delete: commits only the deleted ref reached
``git.commit.count``            update: ``rev-list --count old..new``; create: the
                                commits the repository did not have before the
                                push (reachable from new, not from any branch or
                                tag outside this push, nor from the old value of a
                                ref this push updated)
``git.ref.protected``           the short branch name matches one of the
                                protected patterns (:func:`fnmatch.fnmatchcase`,
                                default ``main``, ``master``, ``release/*``);
                                refs other than branches are matched by full name
                                (so ``refs/tags/v*`` protects tags)
``user.id``                     the first non-empty pusher variable
                                (default ``GL_USERNAME``, ``GITHUB_USER``,
                                ``REMOTE_USER``, ``GIT_PUSHER``, ``USER``)
``vcs.repository.name``         the configured name (``--repository-name``),
                                else the directory name without ``.git``
``git.repository.path``         the repository's absolute path
==============================  ==================================================

A force-update or delete of a protected ref is an ordinary ``git.ref.update``
with ``git.ref.protected = true``; the analytics flag it.

Never blocking a push: the hook makes each event durable in the local spool
(``configure(spool_dir=...)``) and starts a detached drain process that
delivers it; it never waits for the server. Every failure of gitaudit itself
(an exception, a hang past ``GITAUDIT_HOOK_TIMEOUT_S`` seconds, default 10) is
reported on stderr in one line and the hook exits 0.

Configuration comes from ``GITAUDIT_HOOK_CONFIG`` (JSON written into the hook
script at install time: ``protected``, ``pusher_vars``, ``spool_dir``,
``endpoint``); the usual ``GITAUDIT_ENDPOINT``, ``GITAUDIT_API_KEY``,
``GITAUDIT_SPOOL_DIR``, ``OTEL_SERVICE_NAME`` apply too. Without a configured
spool directory the hook spools to ``<repo>/gitaudit/spool``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import semconv as sc

#: Environment variable holding the hook configuration (JSON).
ENV_HOOK_CONFIG = "GITAUDIT_HOOK_CONFIG"
#: Environment variable: seconds after which the hook gives up (default 10).
ENV_HOOK_TIMEOUT_S = "GITAUDIT_HOOK_TIMEOUT_S"
#: Environment variable: seconds the detached drain keeps retrying (default 300).
ENV_DRAIN_TIMEOUT_S = "GITAUDIT_HOOK_DRAIN_TIMEOUT_S"
#: Environment variable the pre-receive script sets to the chained hook's exit status.
ENV_CHAINED_STATUS = "GITAUDIT_CHAINED_STATUS"

DEFAULT_PROTECTED: tuple[str, ...] = ("main", "master", "release/*")
DEFAULT_PUSHER_VARS: tuple[str, ...] = ("GL_USERNAME", "GITHUB_USER", "REMOTE_USER", "GIT_PUSHER", "USER")
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_DRAIN_TIMEOUT_S = 300.0
DEFAULT_SERVICE_NAME = "gitaudit-hooks"
#: The hooks this module handles.
HOOK_NAMES: tuple[str, ...] = ("pre-receive", "post-receive")

KIND_CREATE = "create"
KIND_UPDATE = "update"
KIND_DELETE = "delete"
KIND_FORCE_UPDATE = "force-update"

_GIT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class HookConfig:
    """What an installed hook needs to know.

    Attributes:
        protected: fnmatch patterns of protected branch names.
        pusher_vars: environment variable names read, in order, for ``user.id``.
        spool_dir: directory of the durable spool (``None``: gitaudit's default).
        endpoint: base URL of the OTLP/HTTP receiver (``None``: ``GITAUDIT_ENDPOINT``).
        organization_id: ``audit.organization.id`` of the events (``None``:
            ``GITAUDIT_ORGANIZATION_ID``); needed when the server requires
            organization-bound ingest keys.
        repository_name: ``vcs.repository.name`` of the events (``None``: the
            directory name without ``.git``); set it to the name clients use
            (``acme/app``) so one ``repo:`` search finds pushes both ways.
    """

    protected: tuple[str, ...] = DEFAULT_PROTECTED
    pusher_vars: tuple[str, ...] = DEFAULT_PUSHER_VARS
    spool_dir: str | None = None
    endpoint: str | None = None
    organization_id: str | None = None
    repository_name: str | None = None

    def to_json(self) -> str:
        """Serialize to the JSON stored in the hook script."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> HookConfig:
        """Parse :meth:`to_json` output; empty or ``None`` gives the defaults."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            protected=tuple(data.get("protected", DEFAULT_PROTECTED)),
            pusher_vars=tuple(data.get("pusher_vars", DEFAULT_PUSHER_VARS)),
            spool_dir=data.get("spool_dir"),
            endpoint=data.get("endpoint"),
            organization_id=data.get("organization_id"),
            repository_name=data.get("repository_name"),
        )


@dataclass(frozen=True)
class RefUpdate:
    """One ``<old> <new> <ref>`` line of a receive hook's stdin."""

    old: str
    new: str
    ref: str

    @property
    def created(self) -> bool:
        """The ref did not exist before (old is the all-zero id)."""
        return _is_zero(self.old)

    @property
    def deleted(self) -> bool:
        """The ref is removed (new is the all-zero id)."""
        return _is_zero(self.new)


def _is_zero(oid: str) -> bool:
    return not oid.strip("0")


def parse_updates(text: str) -> list[RefUpdate]:
    """Parse receive-hook stdin (``<old> <new> <ref>`` per line) into :class:`RefUpdate` s.

    Blank and malformed lines are skipped.
    """
    updates = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            updates.append(RefUpdate(*parts))
    return updates


def short_ref(ref: str) -> tuple[str, str | None]:
    """``refs/heads/x`` -> (``x``, ``branch``); ``refs/tags/v`` -> (``v``, ``tag``); else (ref, None)."""
    for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if ref.startswith(prefix):
            return ref[len(prefix):], kind
    return ref, None


def is_protected(ref: str, patterns: Iterable[str]) -> bool:
    """Whether ``ref`` (full name) matches a protected pattern.

    Branches are matched by short name (``release/*`` matches
    ``refs/heads/release/1.2``), other refs by full name. Case-sensitive.
    """
    name, kind = short_ref(ref)
    subject = name if kind == "branch" else ref
    return any(fnmatch.fnmatchcase(subject, p) for p in patterns)


def pusher_identity(pusher_vars: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
    """The value of the first non-empty variable of ``pusher_vars`` in ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    for name in pusher_vars:
        value = env.get(name)
        if value:
            return value
    return None


def repository_name(repo_path: str) -> str:
    """``/srv/git/project.git`` -> ``project``."""
    name = os.path.basename(os.path.normpath(repo_path))
    return name[:-4] if name.endswith(".git") and len(name) > 4 else name


def _git(repo: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run git in ``repo`` with the hook's environment (quarantine included)."""
    return subprocess.run(
        ["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S
    )


def _count(repo: str, tips: Sequence[str], exclude: Iterable[str]) -> int | None:
    """``git rev-list --count tips --not exclude``; ``None`` when git fails."""
    lines = [*tips, *(f"^{oid}" for oid in exclude)]
    proc = _git(repo, "rev-list", "--count", "--stdin", stdin="\n".join(lines) + "\n")
    if proc.returncode != 0:
        return None
    try:
        return int(proc.stdout.strip())
    except ValueError:
        return None


def _other_tips(repo: str, pushed_refs: set[str]) -> list[str]:
    """Object ids of branches and tags not part of this push."""
    proc = _git(repo, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads", "refs/tags")
    tips = []
    for line in proc.stdout.splitlines():
        oid, _, ref = line.partition(" ")
        if ref not in pushed_refs:
            tips.append(oid)
    return tips


def ref_update_attributes(
    repo: str, update: RefUpdate, *, push: Sequence[RefUpdate], config: HookConfig,
    other_tips: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The attributes of the ``git.ref.update`` event for ``update``.

    Args:
        repo: the bare repository path (cwd of the git commands).
        update: the ref update to describe.
        push: every update of the same push (for commit counts of creates).
        config: protected patterns and pusher variables.
        other_tips: object ids of refs outside the push (computed when ``None``).
        env: environment to read the pusher from (default ``os.environ``).

    Returns:
        The attribute dict (see the module docstring). Git failures leave
        the counts out; they never raise except ``subprocess.TimeoutExpired``.
    """
    name, ref_type = short_ref(update.ref)
    repo_abs = os.path.abspath(repo)
    attrs: dict[str, Any] = {
        sc.VCS_REF_HEAD_NAME: name,
        sc.VCS_REF_TYPE: ref_type,
        sc.VCS_REPOSITORY_NAME: config.repository_name or repository_name(repo_abs),
        sc.GIT_REPOSITORY_PATH: repo_abs,
        sc.GIT_REF_PROTECTED: is_protected(update.ref, config.protected),
        sc.USER_ID: pusher_identity(config.pusher_vars, env),
    }
    if not update.deleted:
        attrs[sc.VCS_REF_HEAD_REVISION] = update.new
    if not update.created:
        attrs[sc.GIT_REF_OLD_REVISION] = update.old

    def others() -> list[str]:
        nonlocal other_tips
        if other_tips is None:
            other_tips = _other_tips(repo, {u.ref for u in push})
        return list(other_tips)

    if update.created and update.deleted:
        attrs[sc.GIT_REF_UPDATE_KIND] = KIND_DELETE  # deleting a ref that did not exist
    elif update.created:
        attrs[sc.GIT_REF_UPDATE_KIND] = KIND_CREATE
        olds = [u.old for u in push if not u.created]
        attrs[sc.GIT_COMMIT_COUNT] = _count(repo, [update.new], [*others(), *olds])
    elif update.deleted:
        attrs[sc.GIT_REF_UPDATE_KIND] = KIND_DELETE
        news = [u.new for u in push if not u.deleted and u.ref != update.ref]
        attrs[sc.GIT_REF_COMMITS_DROPPED] = _count(repo, [update.old], [*others(), *news])
    else:
        is_ancestor = _git(repo, "merge-base", "--is-ancestor", update.old, update.new).returncode
        if is_ancestor == 0:
            attrs[sc.GIT_REF_UPDATE_KIND] = KIND_UPDATE
            attrs[sc.GIT_COMMIT_COUNT] = _count(repo, [update.new], [update.old])
        else:
            attrs[sc.GIT_REF_UPDATE_KIND] = KIND_FORCE_UPDATE
            if is_ancestor == 1:
                attrs[sc.GIT_REF_COMMITS_DROPPED] = _count(repo, [update.old], [update.new])
                attrs[sc.GIT_COMMIT_COUNT] = _count(repo, [update.new], [update.old])
    return {k: v for k, v in attrs.items() if v is not None}


def _body(attrs: Mapping[str, Any], outcome: str) -> str:
    """A one-line summary, e.g. ``force-update of main by alice``."""
    text = f"{attrs.get(sc.GIT_REF_UPDATE_KIND)} of {attrs.get(sc.VCS_REF_HEAD_NAME)} " \
           f"by {attrs.get(sc.USER_ID, 'an unknown pusher')}"
    return text + (" denied by the pre-receive hook" if outcome == sc.Outcome.DENIED else "")


def record_updates(
    repo: str, updates: Sequence[RefUpdate], config: HookConfig, *,
    outcome: str = sc.Outcome.SUCCESS, reason: str | None = None,
) -> list[str]:
    """Emit one ``git.ref.update`` per update through the configured provider.

    Args:
        repo: the bare repository path.
        updates: the push's ref updates.
        config: hook configuration.
        outcome: ``success`` (post-receive) or ``denied`` (pre-receive rejected).
        reason: ``audit.error.message`` for denials.

    Returns:
        The events' uids, in stdin order.
    """
    from .events import emit_event, ensure_trace

    uids = []
    with ensure_trace(sc.EventName.GIT_REF_UPDATE):
        other_tips = _other_tips(repo, {u.ref for u in updates})
        for update in updates:
            attrs = ref_update_attributes(repo, update, push=updates, config=config, other_tips=other_tips)
            if reason:
                attrs[sc.AUDIT_ERROR_MESSAGE] = reason
            uids.append(emit_event(sc.EventName.GIT_REF_UPDATE, attributes=attrs, outcome=outcome,
                                   body=_body(attrs, outcome)))
    return uids


def spool_dir_for(repo: str, config: HookConfig) -> str:
    """The spool directory a hook writes to.

    ``config.spool_dir``, else ``GITAUDIT_SPOOL_DIR``, else ``<repo>/gitaudit/spool``
    (inside the repository: the one place the git server's user can always write).
    """
    from .configuration import ENV_SPOOL_DIR

    return config.spool_dir or os.environ.get(ENV_SPOOL_DIR) or os.path.join(
        os.path.abspath(repo), "gitaudit", "spool")


def _open_pipeline(repo: str, config: HookConfig) -> Any:
    """Configure gitaudit for one hook run; return ``finish()``.

    Events go to the durable spool only (``configure(spool_dir=..., ship=False)``:
    each is fsynced to local disk before ``emit`` returns); ``finish()`` closes
    the spool and starts a detached drain process
    (:func:`gitaudit.processors.shipper.spawn_detached_drain`) that delivers
    them, so the hook never waits for the network. The drain retries for
    ``GITAUDIT_HOOK_DRAIN_TIMEOUT_S`` seconds (default 300); what it could not
    deliver stays spooled for the next push's drain or ``gitaudit spool drain``.
    """
    from ..processors.shipper import spawn_detached_drain
    from .configuration import configure, resolve_endpoint

    service = os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    spool_dir = spool_dir_for(repo, config)
    endpoint = resolve_endpoint(config.endpoint)
    provider = configure(endpoint=endpoint, service_name=service, spool_dir=spool_dir,
                         spool_options={"ship": False}, organization_id=config.organization_id)

    def finish() -> None:
        provider.shutdown()
        drain_timeout_s = float(os.environ.get(ENV_DRAIN_TIMEOUT_S) or DEFAULT_DRAIN_TIMEOUT_S)
        spawn_detached_drain(spool_dir, endpoint, timeout_s=drain_timeout_s)

    return finish


class _HookTimeout(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _HookTimeout()


def run_hook(hook: str, stdin_text: str, *, repo: str | None = None,
             config: HookConfig | None = None) -> int:
    """Handle one hook invocation; always returns 0 (the exit status for git).

    Args:
        hook: ``post-receive`` (record successes) or ``pre-receive`` (record
            denials; the script calls it only after a chained hook rejected).
        stdin_text: the hook's stdin.
        repo: the repository (default ``$GIT_DIR`` or the current directory).
        config: configuration (default from ``GITAUDIT_HOOK_CONFIG``).

    Errors of gitaudit itself are written to stderr as one line naming the
    exception class (never its text, which could hold a secret), and swallowed.
    """
    timeout_s = float(os.environ.get(ENV_HOOK_TIMEOUT_S) or DEFAULT_TIMEOUT_S)
    use_alarm = hasattr(signal, "SIGALRM") and timeout_s > 0
    old_handler = None
    if use_alarm:
        old_handler = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        if hook not in HOOK_NAMES:
            raise ValueError(f"unknown hook {hook!r}")
        config = config or HookConfig.from_json(os.environ.get(ENV_HOOK_CONFIG))
        repo = repo or os.environ.get("GIT_DIR") or os.getcwd()
        updates = parse_updates(stdin_text)
        if not updates:
            return 0
        finish = _open_pipeline(repo, config)
        try:
            if hook == "post-receive":
                record_updates(repo, updates, config)
            else:
                status = os.environ.get(ENV_CHAINED_STATUS, "1")
                record_updates(repo, updates, config, outcome=sc.Outcome.DENIED,
                               reason=f"pre-receive hook declined (exit {status})")
        finally:
            finish()
    except BaseException as exc:  # noqa: BLE001 -- a hook must never block the push
        print(f"gitaudit: audit hook {hook} failed ({type(exc).__name__}); push not affected",
              file=sys.stderr)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gitaudit.instrumentation.hooks <hook-name>``: run a hook on stdin; exit 0."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run":
        args = args[1:]
    hook = args[0] if args else ""
    try:
        stdin_text = sys.stdin.read()
    except Exception:  # noqa: BLE001
        stdin_text = ""
    return run_hook(hook, stdin_text)


if __name__ == "__main__":
    sys.exit(main())
