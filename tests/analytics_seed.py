"""A seeded, realistic audit dataset with known contents, for the analytics and investigation tests.

Events are plain :class:`Ev` records; the tests insert them with
``store.insert_rows`` and compute every expected number from the same list in
Python, independently of ClickHouse.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from gitaudit.query.store.schema import INSERT_COLUMNS

NS = 1_000_000_000
MINUTE = 60 * NS
HOUR = 3600 * NS
DAY = 86_400 * NS
#: 2026-10-20T00:00:00Z: the generated data spans ten days, over Berlin's DST end (2026-10-25).
T0 = 1_792_454_400 * NS

ORGS = {"acme": ["alice", "bob", "carol", "dave"], "globex": ["gina", "gus"]}
REPOS = {"acme": ["acme/app", "acme/lib", "acme/web"], "globex": ["globex/core", "globex/ui"]}
GIT_EVENTS = ["git.clone", "git.fetch", "git.push", "git.commit", "git.pull"]
MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
SEVERITY = {"success": 9, "denied": 13, "failure": 17}


@dataclass
class Ev:
    """One event: uid, Unix ns, EventName, organization, attributes (str values)."""

    uid: str
    ts: int
    name: str
    org: str
    attrs: dict[str, str] = field(default_factory=dict)
    service: str = "git-cli"
    trace_id: str = "ab" * 16

    @property
    def outcome(self) -> str:
        """``audit.outcome`` ('' when absent)."""
        return self.attrs.get("audit.outcome", "")

    @property
    def severity(self) -> int:
        """SeverityNumber derived from the outcome (INFO/WARN/ERROR)."""
        return SEVERITY.get(self.outcome, 9)

    @property
    def user(self) -> str:
        return self.attrs.get("user.id", "")

    @property
    def repo(self) -> str:
        return self.attrs.get("vcs.repository.name", "")

    def row(self) -> tuple:
        """The ``otel_logs`` row in ``INSERT_COLUMNS`` order."""
        la = {"log.record.uid": self.uid, **({"audit.organization.id": self.org} if self.org else {}),
              **self.attrs}
        values = {
            "Timestamp": self.ts, "TraceId": self.trace_id, "SpanId": "cd" * 8, "TraceFlags": 1,
            "SeverityText": {9: "INFO", 13: "WARN", 17: "ERROR"}[self.severity], "SeverityNumber": self.severity,
            "ServiceName": self.service, "Body": f"{self.name} by {self.user}", "ResourceSchemaUrl": "",
            "ResourceAttributes": {"service.name": self.service}, "ScopeSchemaUrl": "", "ScopeName": "gitaudit",
            "ScopeVersion": "1", "ScopeAttributes": {}, "LogAttributes": la, "EventName": self.name,
        }
        return tuple(values[c] for c in INSERT_COLUMNS)


def insert(store, events: list[Ev]) -> None:
    """Insert ``events`` into ``store`` in one block."""
    store.insert_rows([e.row() for e in events])


def ev(uid: str, ts: int, name: str, org: str = "acme", *, service: str = "git-cli", trace_id: str = "ab" * 16,
       **attrs: object) -> Ev:
    """Shorthand: attribute keys use ``__`` for ``.`` (``user__id="alice"``)."""
    return Ev(uid, ts, name, org, {k.replace("__", "."): str(v) for k, v in attrs.items()}, service, trace_id)


def generate(seed: int = 6, n: int = 1200) -> list[Ev]:
    """``n`` git and Claude events over ten days from :data:`T0`, seeded (same list every run)."""
    rng = random.Random(seed)
    out: list[Ev] = []
    for i in range(n):
        org = rng.choice(["acme", "acme", "globex"])
        user = rng.choice(ORGS[org])
        ts = T0 + rng.randrange(10 * DAY // NS) * NS + rng.randrange(NS)
        outcome = rng.choices(["success", "failure", "denied"], weights=[80, 15, 5])[0]
        attrs: dict[str, object] = {"user.id": user, "audit.outcome": outcome,
                                    "client.address": f"10.0.{list(ORGS).index(org)}.{ORGS[org].index(user)}"}
        if rng.random() < 0.15:
            name = "claude.request"
            model = rng.choice(MODELS)
            attrs.update({"gen_ai.request.model": model, "gen_ai.usage.input_tokens": rng.randrange(100, 20_000),
                          "gen_ai.usage.output_tokens": rng.randrange(10, 4_000),
                          "gen_ai.usage.cost_usd": str(Decimal(rng.randrange(1, 500_000)) / Decimal(1_000_000))})
            if rng.random() < 0.3:  # the response names the concrete model that answered
                attrs["gen_ai.response.model"] = model + "-20250929"
            service = "claude-client"
        else:
            name = rng.choice(GIT_EVENTS)
            attrs["vcs.repository.name"] = rng.choice(REPOS[org])
            roll = rng.random()
            if roll < 0.4:
                attrs["git.command"] = name.split(".", 1)[1]
            elif roll < 0.5:
                attrs["git.command"] = ""  # present but empty: not the same as missing
            service = rng.choice(["git-cli", "hooks"])
        if rng.random() < 0.9:
            attrs["audit.duration_ms"] = rng.randrange(1, 20_000) / 2  # halves: exact in binary
        out.append(Ev(f"g{i:05d}", ts, name, org, {k: str(v) for k, v in attrs.items()}, service))
    return out


def r7(values: list[float], q: float) -> float:
    """Quantile with linear interpolation between closest ranks (R7, numpy's default)."""
    xs = sorted(values)
    h = q * (len(xs) - 1)
    lo = int(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])
