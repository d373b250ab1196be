"""Repository URLs: remove credentials, derive the repository name and provider.

Git accepts three spellings of a repository location (``git help clone``,
section GIT URLS):

* URLs: ``https://user:token@github.com/org/repo.git``, ``ssh://git@host:22/org/repo.git``,
  ``file:///srv/git/repo.git``;
* scp-like: ``git@github.com:org/repo.git`` (no scheme, a ``:`` before the first ``/``);
* local paths: ``/srv/git/repo.git``, ``../repo``.

:func:`strip_credentials` removes the RFC 3986 userinfo of URLs whose scheme
can carry a secret there (``https://TOKEN@host`` is a common way to pass a
GitHub token, so the whole userinfo goes). For ``ssh`` URLs the user name is an
account, not a secret, so only a ``:password`` part is removed; scp-like
addresses carry no password and are kept as they are.

The results feed the OTel VCS attributes ``vcs.repository.url.full``,
``vcs.repository.name`` and ``vcs.provider.name``
(https://opentelemetry.io/docs/specs/semconv/registry/attributes/vcs/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import semconv as sc

#: Schemes where a user name is an account name, not a credential.
_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})

_URL_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.S)
# scp-like: [user@]host:path, where no "/" comes before the ":" (git's rule).
_SCP_RE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]]+\]|[^/:]+):(?P<path>(?!//).*)$")
# any URL embedded in free text (stderr, argv elements such as -c url.X.insteadOf=URL)
_EMBEDDED_URL_RE = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s'\"?#]*)@")

_PROVIDERS = (
    ("github", "github"),
    ("gitlab", "gitlab"),
    ("bitbucket", "bitbucket"),
    ("gitea", "gitea"),
    ("codeberg.org", "gitea"),
)


def _strip_userinfo(scheme: str, userinfo: str) -> str:
    """Return the userinfo to keep ('' for none) for ``scheme``."""
    if scheme.lower() in _SSH_SCHEMES:
        return userinfo.split(":", 1)[0]
    return ""


def strip_credentials(url: str) -> str:
    """Return ``url`` without credentials.

    Args:
        url: a git repository location (URL, scp-like address or local path).

    Returns:
        The same location without secrets: ``https://user:tok@host/x`` becomes
        ``https://host/x``; ``ssh://git:pw@host/x`` becomes ``ssh://git@host/x``;
        scp-like addresses and local paths are returned unchanged.
    """
    m = _URL_RE.match(url)
    if not m:
        return url
    scheme, rest = m.group("scheme"), m.group("rest")
    # the authority ends at the first "/", "?" or "#"; userinfo ends at its last "@"
    end = len(rest)
    for sep in "/?#":
        pos = rest.find(sep)
        if pos != -1:
            end = min(end, pos)
    authority, tail = rest[:end], rest[end:]
    if "@" not in authority:
        return url
    userinfo, hostport = authority.rsplit("@", 1)
    keep = _strip_userinfo(scheme, userinfo)
    return f"{scheme}://{keep + '@' if keep else ''}{hostport}{tail}"


def strip_credentials_in_text(text: str) -> str:
    """Remove URL credentials wherever a ``scheme://userinfo@`` occurs in ``text``.

    For argv elements (``-c url.https://u:p@h/.insteadOf=...``) and error
    messages; same rules as :func:`strip_credentials`.
    """

    def repl(m: re.Match[str]) -> str:
        scheme = m.group("scheme")
        keep = _strip_userinfo(scheme[:-3], m.group("userinfo"))
        return f"{scheme}{keep + '@' if keep else ''}"

    return _EMBEDDED_URL_RE.sub(repl, text)


def _host_and_path(url: str) -> tuple[str | None, str]:
    m = _URL_RE.match(url)
    if m:
        parts = urlsplit(url)
        return (parts.hostname or None), parts.path
    m = _SCP_RE.match(url)
    if m and not re.match(r"^[A-Za-z]:[\\/]", url):  # not a Windows drive path
        return m.group("host").strip("[]"), m.group("path")
    return None, url


def repository_name(url: str) -> str | None:
    """Return the repository's name, e.g. ``org/repo`` (without ``.git``).

    Hosted repositories (a URL or scp-like address with a host) give their
    whole path (``group/subgroup/repo`` on GitLab); local paths and
    ``file://`` URLs give their last path component. ``None`` when empty.
    """
    host, path = _host_and_path(url)
    path = path.replace("\\", "/").strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    path = path.rstrip("/")
    if path.endswith("/.git"):  # a path to a work tree's .git directory
        path = path[:-5]
    if not path:
        return None
    if host is None or url.lower().startswith("file:"):
        path = path.rsplit("/", 1)[-1]
        if path.endswith(".git"):
            path = path[:-4]
    return path or None


def provider_name(url: str) -> str | None:
    """Return ``vcs.provider.name`` (github, gitlab, bitbucket, gitea) from the host.

    ``None`` when the host is not recognisable (self-hosted names without the
    product in them, local paths).
    """
    host, _ = _host_and_path(url)
    if not host:
        return None
    host = host.lower()
    for needle, provider in _PROVIDERS:
        if needle in host:
            return provider
    return None


@dataclass(frozen=True)
class RepositoryUrl:
    """A repository location, safe to record.

    Attributes:
        url: the location with credentials removed.
        name: ``vcs.repository.name`` or ``None``.
        provider: ``vcs.provider.name`` or ``None``.
    """

    url: str
    name: str | None
    provider: str | None

    def attributes(self) -> dict[str, str]:
        """The ``vcs.repository.url.full`` / ``.name`` / ``vcs.provider.name`` attributes that are known."""
        out = {sc.VCS_REPOSITORY_URL_FULL: self.url}
        if self.name:
            out[sc.VCS_REPOSITORY_NAME] = self.name
        if self.provider:
            out[sc.VCS_PROVIDER_NAME] = self.provider
        return out


def describe_url(url: str) -> RepositoryUrl:
    """Return the safe :class:`RepositoryUrl` of ``url`` (credentials removed)."""
    safe = strip_credentials(url)
    return RepositoryUrl(safe, repository_name(safe), provider_name(safe))


def repository_attributes(url: str | None) -> dict[str, str]:
    """Attributes for ``url`` (empty dict for ``None`` or ``''``)."""
    if not url:
        return {}
    return describe_url(url).attributes()
