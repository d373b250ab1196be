"""Conflicts: all seven porcelain v2 types from real merges, hunk counts, events, merge-tree."""

from __future__ import annotations

import pytest

from gitaudit.instrumentation import audit_context
from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.conflicts import (
    CONFLICT_TYPES,
    Conflict,
    code_of_stages,
    count_markers,
    detect_conflicts,
    emit_conflicts,
    merge_tree_conflicts,
    parse_merge_tree,
    parse_unmerged,
)
from gitaudit.instrumentation.git_runner import GitCommandError

from gitrepos import diverge, git, init_repo, isolated_git_config, rev  # noqa: F401

BASE_UU = "".join(f"line {i}\n" for i in range(1, 11))
OURS_UU = BASE_UU.replace("line 2\n", "ours two\n").replace("line 8\n", "ours eight\n")
THEIRS_UU = BASE_UU.replace("line 2\n", "theirs two\n").replace("line 8\n", "theirs eight\n")
RENAMED = "".join(f"renamed content {i}\n" for i in range(20))

# one merge producing every kind of conflict: path -> (XY, hunks, lines)
EXPECTED = {
    "uu.txt": ("UU", 2, 4),           # both modified, two separated regions of 1+1 lines
    "aa.txt": ("AA", 1, 2),           # both added, different content
    "ud.txt": ("UD", 0, 0),           # modified by us, deleted by them
    "du.txt": ("DU", 0, 0),           # deleted by us, modified by them
    "rr.txt": ("DD", 0, 0),           # rename/rename(1to2): the source path
    "rr_ours.txt": ("AU", 0, 0),      # ... our new name
    "rr_theirs.txt": ("UA", 0, 0),    # ... their new name
}


def _seven_kinds(repo):
    """Branches main/side whose merge yields all seven conflict kinds."""
    return diverge(
        repo,
        {"uu.txt": BASE_UU, "ud.txt": "ud base\n", "du.txt": "du base\n", "rr.txt": RENAMED},
        ours={"uu.txt": OURS_UU, "ud.txt": "ud ours\n", "du.txt": None, "aa.txt": "added by ours\n"},
        theirs={"uu.txt": THEIRS_UU, "ud.txt": None, "du.txt": "du theirs\n", "aa.txt": "added by theirs\n"},
        ours_renames={"rr.txt": "rr_ours.txt"},
        theirs_renames={"rr.txt": "rr_theirs.txt"},
    )


@pytest.fixture
def conflicted(tmp_path):
    """A work tree stopped in a real `git merge side` with all seven conflict kinds."""
    repo = init_repo(tmp_path / "repo")
    _seven_kinds(repo)
    git(repo, "merge", "side", check=False)
    return repo


def test_all_seven_types_from_a_real_merge(conflicted):
    """detect_conflicts maps each XY code to its type with exact hunk and line counts."""
    found = {c.path: c for c in detect_conflicts(conflicted)}
    assert {p: (c.code, c.hunks, c.lines) for p, c in found.items()} == EXPECTED
    assert {c.type for c in found.values()} == set(CONFLICT_TYPES.values())
    assert found["rr.txt"].type == "both_deleted" and found["rr_ours.txt"].type == "added_by_us"
    assert found["rr_theirs.txt"].type == "added_by_them" and found["ud.txt"].type == "deleted_by_them"


def test_detect_from_subdirectory_reads_root_relative_paths(conflicted):
    """Run from a subdirectory, paths stay root-relative and hunks are still counted."""
    sub = conflicted / "nested"
    sub.mkdir()
    found = {c.path: c.hunks for c in detect_conflicts(sub)}
    assert found["uu.txt"] == 2


def test_rename_delete_is_deleted_by_them_with_no_hunks(tmp_path):
    """rename/delete (we rename, they delete) is UD on the new path, with 0 hunks."""
    repo = init_repo(tmp_path / "repo")
    diverge(repo, {"f.txt": RENAMED}, ours={}, theirs={"f.txt": None}, ours_renames={"f.txt": "g.txt"})
    git(repo, "merge", "side", check=False)
    assert detect_conflicts(repo) == [Conflict("g.txt", "UD", "deleted_by_them", 0, 0)]


def test_emit_conflicts_one_event_per_file(conflicted, audit_events):
    """emit_conflicts emits one conflict.detected per file with path, type, hunks, refs and actor."""
    with audit_context(user_id="alice", organization_id="acme"):
        uids = emit_conflicts(conflicted, operation="merge", base_ref="side",
                              base_revision=rev(conflicted, "side"), head_ref="main",
                              head_revision=rev(conflicted, "main"))
    events = audit_events.named("conflict.detected")
    assert len(events) == len(uids) == 7
    by_path = {e.log_record.attributes[sc.CONFLICT_FILE_PATH]: dict(e.log_record.attributes) for e in events}
    uu = by_path["uu.txt"]
    assert uu[sc.CONFLICT_TYPE] == "both_modified" and uu[sc.CONFLICT_HUNKS] == 2 and uu[sc.CONFLICT_LINES] == 4
    assert uu[sc.GIT_COMMAND] == "merge" and uu[sc.VCS_REF_BASE_NAME] == "side"
    assert uu[sc.VCS_REF_BASE_REVISION] == rev(conflicted, "side")
    assert uu[sc.VCS_REF_HEAD_REVISION] == rev(conflicted, "main")
    assert uu[sc.USER_ID] == "alice" and uu[sc.AUDIT_ORGANIZATION_ID] == "acme"
    assert uu[sc.GIT_REPOSITORY_PATH] == str(conflicted)
    assert {a[sc.LOG_RECORD_UID] for a in by_path.values()} == set(uids)
    assert by_path["ud.txt"][sc.CONFLICT_HUNKS] == 0
    assert len({e.log_record.trace_id for e in events}) == 1


def test_merge_tree_finds_the_same_seven_without_a_work_tree(tmp_path, audit_events):
    """merge-tree --write-tree conflicts have the same types and hunks; nothing in the repo changes."""
    repo = init_repo(tmp_path / "repo")
    main_sha, _ = _seven_kinds(repo)
    found = merge_tree_conflicts(repo, "main", "side")
    assert {c.path: (c.code, c.hunks, c.lines) for c in found} == EXPECTED
    assert rev(repo) == main_sha and git(repo, "status", "--porcelain") == ""
    events = audit_events.named("conflict.detected")
    assert len(events) == 7
    assert {e.log_record.attributes[sc.GIT_COMMAND] for e in events} == {"merge-tree"}
    assert {e.log_record.attributes[sc.VCS_REF_BASE_NAME] for e in events} == {"side"}


def test_merge_tree_clean_merge_and_bad_revision(tmp_path, audit_events):
    """A clean merge-tree gives no conflicts and no events; an unknown revision (exit 1, no tree) raises GitCommandError."""
    repo = init_repo(tmp_path / "repo")
    diverge(repo, {"a.txt": "a\n"}, ours={"b.txt": "b\n"}, theirs={"c.txt": "c\n"})
    assert merge_tree_conflicts(repo, "main", "side") == []
    assert audit_events.records() == []
    with pytest.raises(GitCommandError) as info:
        merge_tree_conflicts(repo, "main", "no-such-branch")
    assert info.value.exit_code == 1 and "not something we can merge" in str(info.value)


def test_count_markers_handles_diff3_and_longer_markers():
    """Base sections and separators are not content; longer marker sizes are recognised."""
    diff3 = b"a\n<<<<<<< HEAD\nours\n||||||| base\nbase\n=======\ntheirs 1\ntheirs 2\n>>>>>>> side\nz\n"
    assert count_markers(diff3) == (1, 3)
    longer = b"<<<<<<<<<< ours\nx\n=======\nstill inside\n==========\ny\n>>>>>>>>>> theirs\n"
    assert count_markers(longer) == (1, 4)  # "=========="-line is content at marker size 10
    assert count_markers(b"no conflict <<<<<<< here\n<<<<<<<x\n") == (0, 0)


def test_parse_unmerged_skips_other_entries():
    """Only `u` entries are returned; a rename entry's second path is not mistaken for one."""
    data = "\0".join([
        "# branch.oid abc", "1 .M N... 100644 100644 100644 aa bb f.txt",
        "2 R. N... 100644 100644 100644 aa bb R100 new name.txt", "u x.txt",
        "u UU N... 100644 100644 100644 100644 h1 h2 h3 dir/with space.txt", "? untracked", "",
    ])
    assert parse_unmerged(data) == [("UU", "dir/with space.txt")]


def test_stage_sets_map_to_codes():
    """Each set of index stages maps to git's XY code."""
    assert [code_of_stages(s) for s in ({1}, {2}, {3}, {1, 2}, {1, 3}, {2, 3}, {1, 2, 3})] == [
        "DD", "AU", "UA", "UD", "DU", "AA", "UU"]
    assert parse_merge_tree("abc\0") == ("abc", {})
