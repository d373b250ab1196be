"""Sanitizer throughput: typical audit records per second, and worst-case long bodies.

Run: ``python benchmarks/bench_sanitizer.py [--records N]``. Prints a table:

* typical records/s/core: ``Sanitizer.sanitize_record`` on generated git.push /
  git.clone / claude.request-like records (unique uids, SHAs, trace ids and
  durations; ~1 in 50 records carries a secret), full default rule set,
  one thread;
* worst-case body: a body made of lines dense in rule keywords, look-alikes and
  real-format secrets, at 0.25, 0.5 and 1 MB; time per body and ms per MB (a
  flat ms/MB column shows linear scaling).
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
import uuid

from gitaudit.processors import Sanitizer

ALNUM = string.ascii_letters + string.digits


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def typical_records(n: int, seed: int = 1) -> list[tuple[object, dict, dict]]:
    """``n`` (body, attributes, resource attributes) triples shaped like real audit events."""
    rng = random.Random(seed)
    users = [(f"u-{i}", f"user{i}", f"user{i}@example.com") for i in range(50)]
    repos = [f"acme/repo-{i}" for i in range(30)]
    resource = {"service.name": "git-gateway", "service.version": "1.4.2", "host.name": "gw-1",
                "deployment.environment.name": "prod"}
    out = []
    for i in range(n):
        uid, name, email = rng.choice(users)
        repo = rng.choice(repos)
        kind = rng.random()
        attrs = {
            "log.record.uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "user.id": uid, "user.name": name, "user.email": email,
            "audit.organization.id": "org-1", "session.id": f"sess-{rng.randint(1, 10**6)}",
            "client.address": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "user_agent.original": "git/2.47.1", "audit.duration_ms": rng.random() * 500,
        }
        if kind < 0.6:
            attrs.update({
                "audit.outcome": "success", "vcs.repository.name": repo,
                "vcs.repository.url.full": f"https://github.com/{repo}.git",
                "vcs.ref.head.name": rng.choice(["main", "feature/token-refresh", "release/1.2"]),
                "vcs.ref.head.revision": _hex(rng, 40), "git.ref.old_revision": _hex(rng, 40),
                "git.command": "push", "git.argv": ["git", "push", "origin", "main"],
                "git.exit_code": 0, "git.commit.count": rng.randint(1, 20),
            })
            body = f"git push to {repo} main: {rng.randint(1, 20)} commits"
        elif kind < 0.9:
            attrs.update({
                "audit.outcome": rng.choice(["success", "failure"]), "vcs.repository.name": repo,
                "vcs.repository.url.full": f"https://github.com/{repo}.git", "git.command": "clone",
                "git.exit_code": rng.choice([0, 128]), "git.transfer.bytes": rng.randint(10**3, 10**9),
            })
            body = f"fatal: unable to access 'https://github.com/{repo}.git/': The requested URL returned error: 403"
        else:
            attrs.update({
                "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
                "gen_ai.usage.input_tokens": rng.randint(100, 5000), "gen_ai.usage.output_tokens": rng.randint(10, 900),
                "gen_ai.response.id": "msg_" + "".join(rng.choice(ALNUM) for _ in range(24)),
            })
            body = {"prompt_summary": "resolve conflict in src/app.py", "finish_reasons": ["end_turn"]}
        if i % 50 == 0:
            body = f"git clone https://x-access-token:ghp_{''.join(rng.choice(ALNUM) for _ in range(36))}@github.com/{repo}.git"
        out.append((body, attrs, resource))
    return out


def worst_case_body(size: int, seed: int = 2) -> str:
    """About ``size`` bytes of lines dense in keywords, look-alikes and secrets."""
    rng = random.Random(seed)
    parts, total = [], 0
    while total < size:
        tok = "".join(rng.choice(ALNUM) for _ in range(36))
        line = rng.choice([
            f"password=Hx{tok[:10]}9 token: bearer {tok} key=",
            f"Authorization: Bearer {tok} https://user:{tok[:12]}@host/x.git ",
            f"ghp_{tok} sk-{tok[:20]}T3BlbkFJ{tok[:20]} AKIA{tok[:16].upper()} secret basic ",
            f"4111 1111 1111 1111 {_hex(rng, 40)} eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.{tok} ",
            "task-force sk- glpat- xox aws key token secret password cookie -----BEGIN ",
        ])
        parts.append(line + "\n")
        total += len(line) + 1
    return "".join(parts)[:size]


def bench_typical(sanitizer: Sanitizer, n: int) -> float:
    """Records per CPU-second (process time, so other load on the machine does not count)."""
    records = typical_records(n)
    for body, attrs, _res in records[:200]:  # warm caches and the RE2 DFAs
        sanitizer.sanitize_record(body, attrs)
    start = time.process_time()
    for body, attrs, _res in records:
        sanitizer.sanitize_record(body, attrs)
    return n / (time.process_time() - start)


def bench_body(sanitizer: Sanitizer, size: int) -> float:
    """CPU seconds to sanitize one worst-case body of ``size`` bytes (best of 3)."""
    body = worst_case_body(size)
    sanitizer.sanitize_text(body[:10_000])
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        sanitizer.sanitize_text(body)
        best = min(best, time.process_time() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark table; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000, help="typical records to time (default 50000)")
    args = parser.parse_args(argv)
    sanitizer = Sanitizer(fingerprint_key=b"bench")
    rules = len(sanitizer.rules.rules)
    rate = bench_typical(sanitizer, args.records)
    print(f"gitaudit sanitizer benchmark ({rules} rules, Python {sys.version.split()[0]}, 1 thread, CPU time)")
    print()
    print(f"{'case':<34} {'result':>16}")
    print(f"{'-' * 34} {'-' * 16}")
    print(f"{'typical records/s/core':<34} {rate:>16,.0f}")
    for mb in (0.25, 0.5, 1.0):
        seconds = bench_body(sanitizer, int(mb * 1_000_000))
        print(f"{f'worst-case body {mb:g} MB':<34} {seconds * 1000:>13,.0f} ms   ({seconds * 1000 / mb:,.0f} ms/MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
