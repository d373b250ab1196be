"""Repository URLs: credentials removed, repository name and provider derived."""

from __future__ import annotations

import pytest

from gitaudit.instrumentation import semconv as sc
from gitaudit.instrumentation.git_runner import MASK, event_name_for, sanitize_argv, sanitize_output, subcommand_of
from gitaudit.instrumentation.git_urls import (
    describe_url,
    provider_name,
    repository_attributes,
    repository_name,
    strip_credentials,
    strip_credentials_in_text,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:s3cr3tTOKEN@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://s3cr3tTOKEN@github.com/org/repo", "https://github.com/org/repo"),
        ("http://u:p%40ss@127.0.0.1:8080/x.git", "http://127.0.0.1:8080/x.git"),
        ("https://u:p@ss@host/x", "https://host/x"),
        ("ssh://git:pw@host:2222/org/repo.git", "ssh://git@host:2222/org/repo.git"),
        ("ssh://git@host/org/repo.git", "ssh://git@host/org/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("file:///srv/git/repo.git", "file:///srv/git/repo.git"),
        ("/srv/git/repo.git", "/srv/git/repo.git"),
        ("https://host/path?q=a@b", "https://host/path?q=a@b"),
    ],
)
def test_strip_credentials(url, expected):
    """Userinfo is removed from URLs (ssh keeps the account name); other forms are unchanged."""
    assert strip_credentials(url) == expected


def test_strip_credentials_in_text_handles_embedded_urls():
    """A credential inside free text (stderr, -c values) is removed wherever it occurs."""
    text = "fatal: unable to access 'https://bob:hunter2@example.com/r.git/': refused; url.https://x:y@h/.insteadOf=gh:"
    out = strip_credentials_in_text(text)
    assert "hunter2" not in out and "x:y" not in out and "bob" not in out
    assert "'https://example.com/r.git/'" in out and "url.https://h/.insteadOf=gh:" in out


@pytest.mark.parametrize(
    ("url", "name", "provider"),
    [
        ("https://github.com/open-telemetry/semantic-conventions.git", "open-telemetry/semantic-conventions", "github"),
        ("git@gitlab.com:group/sub/repo.git", "group/sub/repo", "gitlab"),
        ("ssh://git@bitbucket.org:22/team/repo.git", "team/repo", "bitbucket"),
        ("https://gitea.example.com/org/repo", "org/repo", "gitea"),
        ("https://git.example.com/org/repo.git/", "org/repo", None),
        ("file:///tmp/x/origin.git", "origin", None),
        ("/tmp/x/project/.git", "project", None),
        ("../work", "work", None),
    ],
)
def test_repository_name_and_provider(url, name, provider):
    """vcs.repository.name is the hosted path without .git (last component for local paths); provider from host."""
    assert repository_name(url) == name
    assert provider_name(url) == provider


def test_repository_attributes_carry_no_credentials():
    """The attribute dict has the stripped URL, name and provider and never the token."""
    attrs = repository_attributes("https://user:s3cr3tTOKEN@github.com/org/repo.git")
    assert attrs == {
        sc.VCS_REPOSITORY_URL_FULL: "https://github.com/org/repo.git",
        sc.VCS_REPOSITORY_NAME: "org/repo",
        sc.VCS_PROVIDER_NAME: "github",
    }
    assert repository_attributes(None) == {}
    assert describe_url("git@host:a/b.git").provider is None


def test_sanitize_argv_strips_urls_and_masks_secret_options():
    """Recorded argv: URL userinfo gone, extraHeader/password-like values masked, rest unchanged."""
    argv = ["git", "-c", "http.extraHeader=Authorization: Bearer abc123", "-chttp.https://h/.extraheader=X: y",
            "--config=user.password=pw1", "clone", "--password", "pw2", "--token=pw3",
            "https://u:s3cr3tTOKEN@h/r.git", "dest"]
    out = sanitize_argv(argv)
    assert out == ["git", "-c", f"http.extraHeader={MASK}", f"-chttp.https://h/.extraheader={MASK}",
                   f"--config=user.password={MASK}", "clone", "--password", MASK, f"--token={MASK}",
                   "https://h/r.git", "dest"]
    assert sanitize_argv(["git", "-c", "core.autocrlf=false", "status"]) == ["git", "-c", "core.autocrlf=false", "status"]


def test_sanitize_output_trims_and_strips():
    """Error text keeps its tail, at most the limit, without URL credentials."""
    text = "x" * 5000 + " https://a:b@h/r"
    out = sanitize_output(text, 100)
    assert len(out) == 100 and out.endswith("https://h/r") and out.startswith("...")


@pytest.mark.parametrize(
    ("args", "sub", "event"),
    [
        (["push", "--force"], "push", "git.push"),
        (["-C", "repo", "-c", "a=b", "cherry-pick", "x"], "cherry-pick", "git.cherry_pick"),
        (["switch", "-c", "x"], "switch", "git.checkout"),
        (["branch", "-D", "old"], "branch", "git.branch.delete"),
        (["branch", "--delete", "old"], "branch", "git.branch.delete"),
        (["branch", "new"], "branch", "git.command"),
        (["--no-pager", "log"], "log", "git.command"),
        (["--version"], None, "git.command"),
    ],
)
def test_subcommand_and_event_name(args, sub, event):
    """The subcommand is found after git's global options and names the event."""
    assert subcommand_of(args) == sub
    assert event_name_for(args) == event
