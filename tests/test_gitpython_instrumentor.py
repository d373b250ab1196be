"""GitPythonInstrumentor: real GitPython calls on real repositories emit audit events."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

git = pytest.importorskip("git")

from gitaudit.instrumentation import semconv as sc  # noqa: E402
from gitaudit.instrumentation import gitpython_instrumentor as gpi  # noqa: E402
from gitaudit.instrumentation.gitpython_instrumentor import GitPythonInstrumentor  # noqa: E402


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def instrumented(audit_events):
    """Instrument GitPython for one test, uninstrument after."""
    inst = GitPythonInstrumentor()
    inst.instrument()
    try:
        yield audit_events
    finally:
        inst.uninstrument()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare repository with one commit on main (set up with plain git, not audited)."""
    seed = tmp_path / "seed"
    _git(tmp_path, "init", "-q", "-b", "main", str(seed))
    (seed / "a.txt").write_text("one\n")
    _git(seed, "add", "a.txt")
    _git(seed, "commit", "-q", "-m", "first")
    bare = tmp_path / "origin.git"
    _git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


def _commit(repo: git.Repo, name: str, text: str, message: str) -> git.Commit:
    Path(repo.working_tree_dir, name).write_text(text)
    repo.index.add([name])
    return repo.index.commit(message)


def test_clone_from_emits_one_clone_event(instrumented, origin, tmp_path):
    """Repo.clone_from emits exactly one git.clone with url, path, branch and revision."""
    dest = tmp_path / "work"
    repo = git.Repo.clone_from(str(origin), dest)
    assert [r.log_record.event_name for r in instrumented.records()] == ["git.clone"]
    attrs = instrumented.attrs("git.clone")
    assert attrs[sc.VCS_REPOSITORY_URL_FULL] == str(origin)
    assert attrs[sc.VCS_REPOSITORY_NAME] == "origin"
    assert attrs[sc.GIT_REPOSITORY_PATH] == str(dest)
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main"
    assert attrs[sc.VCS_REF_HEAD_REVISION] == repo.head.commit.hexsha
    assert attrs[sc.AUDIT_OUTCOME] == "success"
    assert attrs[sc.AUDIT_DURATION_MS] > 0


def test_clone_url_credentials_are_not_recorded(instrumented, tmp_path):
    """A failed clone of https://user:token@host records the URL without credentials and git.exit_128."""
    with pytest.raises(git.GitCommandError):
        git.Repo.clone_from("https://alice:s3cr3t-token@127.0.0.1:9/org/repo.git", tmp_path / "x",
                            env={"GIT_TERMINAL_PROMPT": "0"})
    rec = instrumented.one("git.clone").log_record
    attrs = dict(rec.attributes)
    assert attrs[sc.VCS_REPOSITORY_URL_FULL] == "https://127.0.0.1:9/org/repo.git"
    assert attrs[sc.AUDIT_OUTCOME] == "failure"
    assert attrs[sc.ERROR_TYPE] == "git.exit_128"
    assert "s3cr3t-token" not in repr(attrs)


def test_commit_records_new_hexsha_and_branch(instrumented, origin, tmp_path):
    """IndexFile.commit emits git.commit whose revision is the new commit and old revision its parent."""
    repo = git.Repo.clone_from(str(origin), tmp_path / "work")
    parent = repo.head.commit.hexsha
    commit = _commit(repo, "b.txt", "b\n", "second")
    attrs = instrumented.attrs("git.commit")
    assert attrs[sc.VCS_REF_HEAD_REVISION] == commit.hexsha
    assert attrs[sc.GIT_REF_OLD_REVISION] == parent
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main"
    assert attrs[sc.VCS_REPOSITORY_NAME] == "origin"


def test_push_fast_forward_then_force_then_rejected_then_delete(instrumented, origin, tmp_path):
    """Push flags come from PushInfo: plain, forced, rejected (no exception) and deleted pushes."""
    repo = git.Repo.clone_from(str(origin), tmp_path / "work")
    base = repo.head.commit.hexsha
    remote = repo.remote()

    c2 = _commit(repo, "b.txt", "b\n", "second")
    instrumented.clear()
    remote.push("main")
    attrs = instrumented.attrs("git.push")
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main" and attrs[sc.VCS_REF_TYPE] == "branch"
    assert attrs[sc.VCS_REF_HEAD_REVISION] == c2.hexsha
    assert attrs[sc.GIT_REF_OLD_REVISION] == base
    assert (attrs[sc.GIT_PUSH_FORCED], attrs[sc.GIT_PUSH_DELETED], attrs[sc.GIT_PUSH_REJECTED]) == (False, False, False)
    assert attrs[sc.AUDIT_OUTCOME] == "success"

    # rewrite history: a plain push is rejected without raising, a forced one succeeds
    repo.head.reset(base, index=True, working_tree=True)
    c3 = _commit(repo, "c.txt", "c\n", "rewritten")
    instrumented.clear()
    result = remote.push("main")
    assert result[0].flags & git.PushInfo.REJECTED
    attrs = instrumented.attrs("git.push")
    assert attrs[sc.AUDIT_OUTCOME] == "failure"
    assert attrs[sc.ERROR_TYPE] == "git.push_rejected"
    assert attrs[sc.GIT_PUSH_REJECTED] is True
    assert "rejected" in attrs[sc.AUDIT_ERROR_MESSAGE]

    instrumented.clear()
    remote.push("main", force=True)
    attrs = instrumented.attrs("git.push")
    assert attrs[sc.GIT_PUSH_FORCED] is True and attrs[sc.GIT_PUSH_REJECTED] is False
    assert attrs[sc.VCS_REF_HEAD_REVISION] == c3.hexsha
    assert attrs[sc.GIT_REF_OLD_REVISION] == c2.hexsha
    assert attrs[sc.AUDIT_OUTCOME] == "success"

    remote.push("main:refs/heads/feature")
    instrumented.clear()
    remote.push(":refs/heads/feature")
    attrs = instrumented.attrs("git.push")
    assert attrs[sc.GIT_PUSH_DELETED] is True
    assert attrs[sc.VCS_REF_HEAD_NAME] == "feature"
    assert sc.VCS_REF_HEAD_REVISION not in attrs
    assert _git(origin, "branch", "--list", "feature") == ""


def test_push_of_tag_and_branch_is_one_event_with_lists(instrumented, origin, tmp_path):
    """A push of two refs is one git.push whose ref attributes list both refs in git's order."""
    repo = git.Repo.clone_from(str(origin), tmp_path / "work")
    repo.create_tag("v1")
    instrumented.clear()
    repo.remote().push(["main:refs/heads/copy", "refs/tags/v1"])
    attrs = instrumented.attrs("git.push")
    assert sorted(attrs[sc.VCS_REF_HEAD_NAME]) == ["copy", "v1"]
    assert sorted(attrs[sc.VCS_REF_TYPE]) == ["branch", "tag"]


def test_push_to_missing_remote_fails_with_exit_code(instrumented, origin, tmp_path):
    """A push that git aborts raises GitCommandError and records failure git.exit_<status>."""
    repo = git.Repo.clone_from(str(origin), tmp_path / "work")
    repo.create_remote("gone", str(tmp_path / "nowhere.git"))
    instrumented.clear()
    with pytest.raises(git.GitCommandError):
        repo.remote("gone").push("main")
    attrs = instrumented.attrs("git.push")
    assert attrs[sc.AUDIT_OUTCOME] == "failure"
    assert attrs[sc.ERROR_TYPE] == "git.exit_128"
    assert attrs[sc.GIT_EXIT_CODE] == 128


def test_fetch_and_pull(instrumented, origin, tmp_path):
    """Remote.fetch emits git.fetch; Remote.pull emits git.pull with the old and new HEAD."""
    a = git.Repo.clone_from(str(origin), tmp_path / "a")
    b = git.Repo.clone_from(str(origin), tmp_path / "b")
    old = b.head.commit.hexsha
    new = _commit(a, "n.txt", "n\n", "new").hexsha
    a.remote().push("main")
    instrumented.clear()
    b.remote().fetch()
    assert instrumented.attrs("git.fetch")[sc.VCS_REPOSITORY_URL_FULL] == str(origin)
    b.remote().pull("main")
    attrs = instrumented.attrs("git.pull")
    assert attrs[sc.GIT_REF_OLD_REVISION] == old
    assert attrs[sc.VCS_REF_HEAD_REVISION] == new
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main"
    assert [r.log_record.event_name for r in instrumented.records()] == ["git.fetch", "git.pull"]


def test_rebase_and_merge_through_repo_git(instrumented, origin, tmp_path):
    """repo.git.rebase / repo.git.merge emit git.rebase / git.merge with head, base and revisions."""
    repo = git.Repo.clone_from(str(origin), tmp_path / "work")
    repo.git.checkout("-b", "topic")
    _commit(repo, "t.txt", "t\n", "topic work")
    topic_before = repo.head.commit.hexsha
    repo.git.checkout("main")
    main_tip = _commit(repo, "m.txt", "m\n", "main work").hexsha
    repo.git.checkout("topic")
    instrumented.clear()
    repo.git.rebase("main")
    attrs = instrumented.attrs("git.rebase")
    assert attrs[sc.VCS_REF_HEAD_NAME] == "topic"
    assert attrs[sc.GIT_REF_OLD_REVISION] == topic_before
    assert attrs[sc.VCS_REF_HEAD_REVISION] == repo.head.commit.hexsha != topic_before
    assert attrs[sc.VCS_REF_BASE_NAME] == "main"
    assert attrs[sc.VCS_REF_BASE_REVISION] == main_tip
    assert list(attrs[sc.GIT_ARGV]) == ["rebase", "main"]
    assert [r.log_record.event_name for r in instrumented.records()] == ["git.rebase"]

    repo.git.checkout("main")
    instrumented.clear()
    repo.git.merge("topic", ff_only=True)
    attrs = instrumented.attrs("git.merge")
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main"
    assert attrs[sc.VCS_REF_HEAD_REVISION] == repo.head.commit.hexsha
    assert list(attrs[sc.GIT_ARGV]) == ["merge", "--ff-only", "topic"]


def test_merge_conflict_fails_and_emits_conflicts(instrumented, origin, tmp_path):
    """A conflicting repo.git.merge records failure git.exit_1 and one conflict.detected (UU, 1 hunk)."""
    repo = git.Repo.clone_from(str(origin), tmp_path / "work")
    repo.git.checkout("-b", "other")
    _commit(repo, "a.txt", "theirs\n", "other side")
    repo.git.checkout("main")
    _commit(repo, "a.txt", "ours\n", "our side")
    instrumented.clear()
    with pytest.raises(git.GitCommandError):
        repo.git.merge("other")
    attrs = instrumented.attrs("git.merge")
    assert attrs[sc.AUDIT_OUTCOME] == "failure"
    assert attrs[sc.ERROR_TYPE] == "git.exit_1"
    assert attrs[sc.GIT_CONFLICT_COUNT] == 1
    conflict = instrumented.attrs("conflict.detected")
    assert conflict[sc.CONFLICT_FILE_PATH] == "a.txt"
    assert conflict[sc.CONFLICT_TYPE] == "both_modified"
    assert conflict[sc.CONFLICT_HUNKS] == 1
    merge_rec, conflict_rec = instrumented.one("git.merge"), instrumented.one("conflict.detected")
    assert merge_rec.log_record.trace_id == conflict_rec.log_record.trace_id


def test_checkout_tag_reset_branch_delete(instrumented, origin, tmp_path):
    """checkout, tag, reset and branch -d emit their events; read-only commands emit nothing."""
    repo = git.Repo.clone_from(str(origin), tmp_path / "work")
    first = repo.head.commit.hexsha
    second = _commit(repo, "b.txt", "b\n", "second").hexsha
    instrumented.clear()
    repo.git.checkout("-b", "side")
    assert instrumented.attrs("git.checkout")[sc.VCS_REF_HEAD_NAME] == "side"
    repo.git.tag("-a", "-m", "release notes", "v1.0")
    tag = instrumented.attrs("git.tag")
    assert (tag[sc.VCS_REF_HEAD_NAME], tag[sc.VCS_REF_TYPE], tag[sc.VCS_REF_HEAD_REVISION]) == ("v1.0", "tag", second)
    assert tag[sc.GIT_REF_UPDATE_KIND] == "create"
    repo.git.reset("--hard", first)
    reset = instrumented.attrs("git.reset")
    assert (reset[sc.GIT_REF_OLD_REVISION], reset[sc.VCS_REF_HEAD_REVISION]) == (second, first)
    repo.git.checkout("main")
    instrumented.clear()
    repo.git.branch("-D", "side")
    deleted = instrumented.attrs("git.branch.delete")
    assert (deleted[sc.VCS_REF_HEAD_NAME], deleted[sc.GIT_REF_OLD_REVISION]) == ("side", first)
    instrumented.clear()
    repo.git.status()
    repo.git.tag()  # listing
    repo.git.branch()
    assert instrumented.records() == []


def test_uninstrument_stops_events_and_restores_classmethod(audit_events, origin, tmp_path):
    """After uninstrument no event is emitted and Repo.clone_from is GitPython's classmethod again."""
    original = vars(git.Repo)["clone_from"]
    inst = GitPythonInstrumentor()
    inst.instrument()
    git.Repo.clone_from(str(origin), tmp_path / "one")
    assert len(audit_events.named("git.clone")) == 1
    inst.uninstrument()
    assert vars(git.Repo)["clone_from"] is original

    class SubRepo(git.Repo):
        pass

    cloned = SubRepo.clone_from(str(origin), tmp_path / "two")
    assert type(cloned) is SubRepo
    _commit(cloned, "z.txt", "z\n", "z")
    cloned.remote().push("main")
    cloned.git.checkout("-b", "x")
    assert [r.log_record.event_name for r in audit_events.records()] == ["git.clone"]


def test_emit_failure_never_breaks_the_git_call(instrumented, origin, tmp_path, monkeypatch):
    """When emitting raises, the GitPython call still returns its normal result."""

    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(gpi, "emit_event", broken)
    repo = git.Repo.clone_from(str(origin), tmp_path / "work")
    assert repo.head.commit.hexsha == _git(origin, "rev-parse", "main")


def test_module_imports_and_declares_dependency_without_gitpython():
    """The module imports with GitPython absent and declares GitPython >= 3.1 as its dependency."""
    code = (
        "import sys; sys.modules['git'] = None\n"
        "from gitaudit.instrumentation.gitpython_instrumentor import GitPythonInstrumentor as G\n"
        "print(G().instrumentation_dependencies())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "('GitPython >= 3.1',)"
