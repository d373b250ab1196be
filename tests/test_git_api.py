"""The audited git API: real git on real temporary repositories, one event per operation."""

from __future__ import annotations

import json

import pytest
from gitrepos import (  # noqa: F401 - isolated_git_config is an autouse fixture
    clone,
    commit_file,
    commits,
    git,
    init_repo,
    isolated_git_config,
    origin_with_clone,
    rev,
    write,
)

from gitaudit.instrumentation import audit_context, ensure_trace
from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.git_api import Git, parse_push_porcelain
from gitaudit.instrumentation.git_runner import GitCommandError, run_git

ACTOR = {"user_id": "alice", "organization_id": "acme"}


@pytest.fixture
def repos(tmp_path):
    """(origin, work): a bare origin with one commit on main and a clone of it."""
    return origin_with_clone(tmp_path, files={"app.txt": "one\ntwo\nthree\n"})


def _common(attrs):
    assert attrs[sc.USER_ID] == "alice" and attrs[sc.AUDIT_ORGANIZATION_ID] == "acme"
    assert attrs[sc.AUDIT_DURATION_MS] > 0
    assert attrs[sc.LOG_RECORD_UID]


def test_clone_event(repos, tmp_path, audit_events):
    """clone of a file:// URL: success, actor, duration, branch, revision, depth, URL, name, path."""
    origin, _ = repos
    dest = tmp_path / "shallow"
    with audit_context(**ACTOR):
        result = Git().clone(f"file://{origin}", dest, depth=1)
    assert result.ok and result.event_name == "git.clone"
    attrs = audit_events.attrs("git.clone")
    _common(attrs)
    assert attrs[sc.AUDIT_OUTCOME] == "success" and attrs[sc.GIT_EXIT_CODE] == 0
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main"
    assert attrs[sc.VCS_REF_HEAD_REVISION] == rev(dest) == rev(origin, "main")
    assert attrs[sc.GIT_CLONE_DEPTH] == 1
    assert attrs[sc.VCS_REPOSITORY_URL_FULL] == f"file://{origin}"
    assert attrs[sc.VCS_REPOSITORY_NAME] == "origin"
    assert attrs[sc.GIT_REPOSITORY_PATH] == str(dest)
    assert attrs[sc.GIT_COMMAND] == "clone" and list(attrs[sc.GIT_ARGV])[:2] == ["git", "clone"]
    assert attrs[sc.LOG_RECORD_UID] == result.uid
    assert git(dest, "rev-list", "--count", "HEAD") == "1"


def test_failing_clone_with_credentials_leaks_no_token(tmp_path, audit_events):
    """A failed clone of https://user:TOKEN@127.0.0.1:1 is a failure event with no trace of the token."""
    url = "https://user:s3cr3tTOKEN@127.0.0.1:1/org/repo.git"
    with audit_context(**ACTOR):
        result = Git(tmp_path).clone(url, "dest")
    assert not result.ok and result.exit_code == 128
    rec = audit_events.one("git.clone").log_record
    attrs = dict(rec.attributes)
    assert attrs[sc.AUDIT_OUTCOME] == "failure" and attrs[sc.ERROR_TYPE] == "git.exit_128"
    assert attrs[sc.VCS_REPOSITORY_URL_FULL] == "https://127.0.0.1:1/org/repo.git"
    assert attrs[sc.VCS_REPOSITORY_NAME] == "org/repo"
    assert "127.0.0.1" in attrs[sc.AUDIT_ERROR_MESSAGE]
    dumped = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}) + str(rec.body)
    assert "s3cr3tTOKEN" not in dumped and "user:" not in dumped


def test_commit_event(repos, audit_events):
    """commit: success, new revision, branch, count 1, message not in argv."""
    _, work = repos
    write(work, "app.txt", "changed\n")
    with audit_context(**ACTOR):
        result = Git(work).commit("fix: the secret word is swordfish", all=True)
    attrs = audit_events.attrs("git.commit")
    _common(attrs)
    assert result.ok and attrs[sc.AUDIT_OUTCOME] == "success"
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main" and attrs[sc.VCS_REF_HEAD_REVISION] == rev(work)
    assert attrs[sc.GIT_COMMIT_COUNT] == 1
    assert "swordfish" not in " ".join(attrs[sc.GIT_ARGV])
    assert git(work, "log", "-1", "--format=%s") == "fix: the secret word is swordfish"
    assert attrs[sc.VCS_REPOSITORY_NAME] == "origin"


def test_commit_with_nothing_to_commit_fails(repos, audit_events):
    """A commit git refuses (nothing to commit) is a failure event with exit code 1."""
    _, work = repos
    result = Git(work).commit("empty")
    attrs = audit_events.attrs("git.commit")
    assert not result.ok and attrs[sc.AUDIT_OUTCOME] == "failure"
    assert attrs[sc.ERROR_TYPE] == "git.exit_1" and sc.GIT_COMMIT_COUNT not in attrs


def test_push_counts_commits(repos, audit_events):
    """Pushing 3 commits: success, git.commit.count 3, ref, revision, no force/delete/reject."""
    origin, work = repos
    commits(work, 3)
    with audit_context(**ACTOR):
        result = Git(work).push("origin", "main")
    attrs = audit_events.attrs("git.push")
    _common(attrs)
    assert result.ok and attrs[sc.AUDIT_OUTCOME] == "success"
    assert attrs[sc.GIT_COMMIT_COUNT] == 3
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main" and attrs[sc.VCS_REF_TYPE] == "branch"
    assert attrs[sc.VCS_REF_HEAD_REVISION] == rev(work) == rev(origin, "main")
    assert (attrs[sc.GIT_PUSH_FORCED], attrs[sc.GIT_PUSH_DELETED], attrs[sc.GIT_PUSH_REJECTED]) == (False, False, False)
    assert attrs[sc.VCS_REPOSITORY_URL_FULL] == str(origin)


def test_push_new_branch_counts_only_new_commits(repos, audit_events):
    """A new branch with 2 commits on top of main counts 2, not the whole history."""
    origin, work = repos
    git(work, "checkout", "-q", "-b", "feature")
    commits(work, 2)
    result = Git(work).push(refspec="feature", set_upstream=True)
    attrs = audit_events.attrs("git.push")
    assert result.ok and attrs[sc.GIT_COMMIT_COUNT] == 2
    assert attrs[sc.VCS_REF_HEAD_NAME] == "feature" and attrs[sc.VCS_REF_HEAD_REVISION] == rev(origin, "feature")


def test_push_to_missing_remote_fails(repos, audit_events):
    """A push to a remote that does not exist is a failure event (exit 128); check=True raises after it."""
    _, work = repos
    with audit_context(**ACTOR):
        result = Git(work).push("nowhere", "main")
    attrs = audit_events.attrs("git.push")
    _common(attrs)
    assert not result.ok and result.exit_code == 128
    assert attrs[sc.AUDIT_OUTCOME] == "failure" and attrs[sc.ERROR_TYPE] == "git.exit_128"
    assert "nowhere" in attrs[sc.AUDIT_ERROR_MESSAGE]
    audit_events.clear()
    with pytest.raises(GitCommandError) as info:
        Git(work).push("nowhere", "main", check=True)
    assert info.value.uid == audit_events.attrs("git.push")[sc.LOG_RECORD_UID]


def test_rejected_then_forced_push(repos, tmp_path, audit_events):
    """A non-fast-forward push is rejected (failure, git.push.rejected); --force then succeeds with git.push.forced."""
    origin, work = repos
    other = clone(origin, tmp_path / "other")
    commit_file(other, "other.txt", "theirs\n")
    git(other, "push", "-q", "origin", "main")
    commit_file(work, "mine.txt", "ours\n")
    rejected = Git(work).push("origin", "main")
    attrs = audit_events.attrs("git.push")
    assert not rejected.ok and attrs[sc.AUDIT_OUTCOME] == "failure"
    assert attrs[sc.GIT_PUSH_REJECTED] is True and attrs[sc.GIT_PUSH_FORCED] is False
    assert attrs[sc.ERROR_TYPE] == "git.push.rejected" and "[rejected] (fetch first)" in attrs[sc.AUDIT_ERROR_MESSAGE]
    assert attrs[sc.GIT_COMMIT_COUNT] == 0
    audit_events.clear()
    forced = Git(work).push("origin", "main", force=True)
    attrs = audit_events.attrs("git.push")
    assert forced.ok and attrs[sc.AUDIT_OUTCOME] == "success"
    assert attrs[sc.GIT_PUSH_FORCED] is True and attrs[sc.GIT_PUSH_REJECTED] is False
    assert attrs[sc.GIT_COMMIT_COUNT] == 1 and rev(origin, "main") == rev(work)


def test_branch_delete_push(repos, audit_events):
    """Deleting a remote branch by push sets git.push.deleted and names the branch."""
    origin, work = repos
    git(work, "push", "-q", "origin", "main:feature")
    result = Git(work).push("origin", "feature", delete=True)
    attrs = audit_events.attrs("git.push")
    assert result.ok and attrs[sc.GIT_PUSH_DELETED] is True and attrs[sc.GIT_PUSH_FORCED] is False
    assert attrs[sc.VCS_REF_HEAD_NAME] == "feature" and sc.VCS_REF_HEAD_REVISION not in attrs
    assert attrs[sc.GIT_COMMIT_COUNT] == 0
    assert git(origin, "branch", "--list", "feature") == ""


def test_fetch_event(repos, tmp_path, audit_events):
    """fetch: success, actor, remote URL, current branch and revision."""
    origin, work = repos
    other = clone(origin, tmp_path / "other")
    commit_file(other, "new.txt", "x\n")
    git(other, "push", "-q", "origin", "main")
    with audit_context(**ACTOR):
        result = Git(work).fetch()
    attrs = audit_events.attrs("git.fetch")
    _common(attrs)
    assert result.ok and attrs[sc.AUDIT_OUTCOME] == "success"
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main" and attrs[sc.VCS_REF_HEAD_REVISION] == rev(work)
    assert rev(work, "origin/main") == rev(origin, "main")
    assert attrs[sc.VCS_REPOSITORY_URL_FULL] == str(origin)


def _conflicting_upstream(origin, work, tmp_path):
    """origin/main and local main both change line two of app.txt."""
    other = clone(origin, tmp_path / "other")
    commit_file(other, "app.txt", "one\nTWO (theirs)\nthree\n", "theirs")
    git(other, "push", "-q", "origin", "main")
    commit_file(work, "app.txt", "one\ntwo (ours)\nthree\n", "ours")


def test_rebase_with_conflict_then_continue(repos, tmp_path, audit_events):
    """A conflicting rebase is failure/git.conflict with conflict.detected events; resolving and continuing succeeds."""
    origin, work = repos
    _conflicting_upstream(origin, work, tmp_path)
    git(work, "fetch", "-q")
    g = Git(work)
    with audit_context(**ACTOR):
        result = g.rebase("origin/main")
    attrs = audit_events.attrs("git.rebase")
    _common(attrs)
    assert not result.ok and attrs[sc.AUDIT_OUTCOME] == "failure" and attrs[sc.ERROR_TYPE] == "git.conflict"
    assert attrs[sc.GIT_CONFLICT_COUNT] == 1
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main"
    assert attrs[sc.VCS_REF_BASE_NAME] == "origin/main" and attrs[sc.VCS_REF_BASE_REVISION] == rev(origin, "main")
    conflict = audit_events.attrs("conflict.detected")
    assert conflict[sc.CONFLICT_FILE_PATH] == "app.txt" and conflict[sc.CONFLICT_TYPE] == "both_modified"
    assert conflict[sc.CONFLICT_HUNKS] == 1 and conflict[sc.GIT_COMMAND] == "rebase"
    assert conflict[sc.USER_ID] == "alice" and conflict[sc.VCS_REPOSITORY_NAME] == "origin"
    assert list(result.conflict_uids) == [conflict[sc.LOG_RECORD_UID]]
    recs = [audit_events.one("git.rebase"), audit_events.one("conflict.detected")]
    assert recs[0].log_record.trace_id == recs[1].log_record.trace_id
    # resolve and continue
    write(work, "app.txt", "one\ntwo (both)\nthree\n")
    git(work, "add", "app.txt")
    audit_events.clear()
    done = g.rebase(continue_=True)
    attrs = audit_events.attrs("git.rebase")
    assert done.ok and attrs[sc.AUDIT_OUTCOME] == "success"
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main" and attrs[sc.VCS_REF_HEAD_REVISION] == rev(work)
    assert attrs[sc.VCS_REF_BASE_REVISION] == rev(origin, "main")
    assert rev(work, "HEAD~1") == rev(origin, "main")


def test_pull_with_conflict(repos, tmp_path, audit_events):
    """A merging pull that conflicts is failure/git.conflict with a conflict.detected from `pull`."""
    origin, work = repos
    _conflicting_upstream(origin, work, tmp_path)
    result = Git(work).pull(rebase=False)
    attrs = audit_events.attrs("git.pull")
    assert not result.ok and attrs[sc.ERROR_TYPE] == "git.conflict" and attrs[sc.GIT_CONFLICT_COUNT] == 1
    assert attrs[sc.VCS_REF_BASE_REVISION] == rev(origin, "main")
    assert attrs[sc.VCS_REF_HEAD_NAME] == "main"
    conflict = audit_events.attrs("conflict.detected")
    assert conflict[sc.GIT_COMMAND] == "pull" and conflict[sc.CONFLICT_TYPE] == "both_modified"


def test_merge_and_cherry_pick_conflicts(tmp_path, audit_events):
    """merge and cherry-pick stopping on conflicts are git.conflict with base ref and revision."""
    repo = init_repo(tmp_path / "r")
    commit_file(repo, "f.txt", "base\n")
    git(repo, "checkout", "-q", "-b", "side")
    side = commit_file(repo, "f.txt", "side\n")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "f.txt", "main\n")
    g = Git(repo)
    merged = g.merge("side")
    attrs = audit_events.attrs("git.merge")
    assert not merged.ok and attrs[sc.ERROR_TYPE] == "git.conflict"
    assert attrs[sc.VCS_REF_BASE_NAME] == "side" and attrs[sc.VCS_REF_BASE_REVISION] == side
    assert [c.code for c in merged.conflicts] == ["UU"]
    assert g.merge(abort=True).ok
    audit_events.clear()
    picked = g.cherry_pick(side)
    attrs = audit_events.attrs("git.cherry_pick")
    assert not picked.ok and attrs[sc.ERROR_TYPE] == "git.conflict" and attrs[sc.VCS_REF_BASE_REVISION] == side
    assert audit_events.attrs("conflict.detected")[sc.GIT_COMMAND] == "cherry-pick"


def test_merge_fast_forward_success(tmp_path, audit_events):
    """A clean merge is a success event whose head revision is the merged commit."""
    repo = init_repo(tmp_path / "r")
    commit_file(repo, "a.txt", "a\n")
    git(repo, "checkout", "-q", "-b", "side")
    side = commit_file(repo, "b.txt", "b\n")
    git(repo, "checkout", "-q", "main")
    result = Git(repo).merge("side", ff_only=True)
    attrs = audit_events.attrs("git.merge")
    assert result.ok and attrs[sc.AUDIT_OUTCOME] == "success" and attrs[sc.VCS_REF_HEAD_REVISION] == side
    assert sc.VCS_REPOSITORY_URL_FULL not in attrs  # no remote


def test_checkout_switch_tag_branch_delete_reset(tmp_path, audit_events):
    """checkout/switch, tag create/delete, branch delete and reset each emit their event with refs."""
    repo = init_repo(tmp_path / "r")
    first = commit_file(repo, "a.txt", "a\n")
    second = commit_file(repo, "a.txt", "b\n")
    g = Git(repo)
    assert g.checkout("topic", create=True).ok
    assert audit_events.attrs("git.checkout")[sc.VCS_REF_HEAD_NAME] == "topic"
    assert g.switch("main").ok
    switched = audit_events.named("git.checkout")[-1].log_record.attributes
    assert switched[sc.GIT_COMMAND] == "switch" and switched[sc.VCS_REF_HEAD_NAME] == "main"
    assert g.tag("v1", first, message="release 1").ok
    tag = audit_events.attrs("git.tag")
    assert tag[sc.VCS_REF_HEAD_NAME] == "v1" and tag[sc.VCS_REF_TYPE] == "tag"
    assert tag[sc.VCS_REF_HEAD_REVISION] == first and tag[sc.GIT_REF_UPDATE_KIND] == "create"
    assert git(repo, "tag", "-n1", "-l", "v1").split() == ["v1", "release", "1"]
    assert g.tag("v1", delete=True).ok
    deleted = audit_events.named("git.tag")[-1].log_record.attributes
    assert deleted[sc.GIT_REF_UPDATE_KIND] == "delete" and deleted[sc.VCS_REF_HEAD_REVISION] == first
    assert g.branch_delete("topic").ok
    bd = audit_events.attrs("git.branch.delete")
    assert bd[sc.VCS_REF_HEAD_NAME] == "topic" and bd[sc.VCS_REF_HEAD_REVISION] == second
    assert g.reset("HEAD~1", mode="hard").ok
    reset = audit_events.attrs("git.reset")
    assert reset[sc.GIT_REF_OLD_REVISION] == second and reset[sc.VCS_REF_HEAD_REVISION] == first
    with pytest.raises(ValueError):
        g.reset("HEAD", mode="bogus")
    failed = g.branch_delete("does-not-exist")
    assert not failed.ok and audit_events.named("git.branch.delete")[-1].log_record.attributes[sc.ERROR_TYPE] == "git.exit_1"


def test_command_and_merge_tree(tmp_path, audit_events):
    """command() names the event by subcommand; merge_tree reports conflicts without touching the work tree."""
    repo = init_repo(tmp_path / "r")
    commit_file(repo, "f.txt", "base\n")
    git(repo, "checkout", "-q", "-b", "side")
    commit_file(repo, "f.txt", "side\n")
    git(repo, "checkout", "-q", "main")
    main = commit_file(repo, "f.txt", "main\n")
    g = Git(repo)
    status = g.command("status", "--short")
    attrs = audit_events.attrs("git.command")
    assert status.ok and attrs[sc.GIT_COMMAND] == "status" and attrs[sc.VCS_REF_HEAD_REVISION] == main
    assert g.command("branch", "-D", "side").event_name == "git.branch.delete"
    git(repo, "branch", "side", "HEAD~1")
    commit_file(repo, "g.txt", "x\n")
    git(repo, "checkout", "-q", "side")
    commit_file(repo, "f.txt", "side again\n")
    audit_events.clear()
    result = g.merge_tree("main", "side")
    attrs = audit_events.attrs("git.command")
    assert not result.ok and attrs[sc.GIT_COMMAND] == "merge-tree" and attrs[sc.ERROR_TYPE] == "git.conflict"
    assert attrs[sc.GIT_CONFLICT_COUNT] == 1 and [c.type for c in result.conflicts] == ["both_modified"]
    assert audit_events.attrs("conflict.detected")[sc.CONFLICT_HUNKS] == 1
    assert git(repo, "status", "--porcelain") == ""


def test_missing_git_binary_raises_after_failure_event(tmp_path, audit_events):
    """When git cannot start, the OSError reaches the caller and a failure event is still recorded."""
    with pytest.raises(FileNotFoundError):
        Git(tmp_path, git_binary="/nonexistent/git").command("status")
    attrs = audit_events.attrs("git.command")
    assert attrs[sc.AUDIT_OUTCOME] == "failure" and attrs[sc.ERROR_TYPE] == "FileNotFoundError"


def test_trace2_events_join_the_callers_trace(tmp_path):
    """run_git passes the active trace id as GIT_TRACE2_PARENT_SID: git's trace2 sid starts with it."""
    target = tmp_path / "trace2.json"
    with ensure_trace("t") as ctx:
        res = run_git(["version"], env={"GIT_TRACE2_EVENT": str(target)})
    assert res.ok and res.duration_ms > 0
    sids = {json.loads(line)["sid"] for line in target.read_text().splitlines()}
    assert sids and all(s.startswith(format(ctx.trace_id, "032x") + "/") for s in sids)


def test_parse_push_porcelain():
    """Porcelain ref lines are parsed into flag, source, destination and summary."""
    out = ("To /tmp/origin.git\n+\trefs/heads/main:refs/heads/main\tabc...def (forced update)\n"
           "-\t:refs/heads/old\t[deleted]\n!\trefs/heads/x:refs/heads/x\t[rejected] (fetch first)\nDone\n")
    refs = parse_push_porcelain(out)
    assert [(r.flag, r.src, r.dst) for r in refs] == [
        ("+", "refs/heads/main", "refs/heads/main"), ("-", "", "refs/heads/old"), ("!", "refs/heads/x", "refs/heads/x")]
    assert refs[0].summary == "abc...def (forced update)"


def test_only_the_audited_git_process_reaches_trace2(repos, tmp_path, audit_events):
    """The audited command is in trace2 under the event's trace id; gitaudit's look-ups are not."""
    _, work = repos
    target = tmp_path / "trace2.json"
    write(work, "app.txt", "again\n")
    Git(work, env={"GIT_TRACE2_EVENT": str(target)}).commit("traced", all=True)
    events = [json.loads(line) for line in target.read_text().splitlines()]
    top_level = {e["sid"]: e for e in events if e["event"] == "cmd_name" and e["sid"].count("/") == 1}
    assert [e["name"] for e in top_level.values()] == ["commit"]
    trace_id = format(audit_events.one("git.commit").log_record.trace_id, "032x")
    assert all(sid.startswith(trace_id + "/") for sid in top_level)
