"""Added wall time per git command: plain git vs trace2 + agent vs the gitaudit wrappers.

Run::

    .venv/bin/python benchmarks/bench_git_overhead.py [--runs 21] [--clone-runs 9] [--source /work/main]

For each command it runs, round-robin so drift hits every mode alike:

* ``plain``     -- ``git ...`` with an empty global config (no trace2);
* ``trace2``    -- the same with ``trace2.eventTarget=af_unix:stream:<sock>``
  pointing at a live :class:`~gitaudit.instrumentation.trace2_agent.Trace2Agent`
  running in its own process, exporting OTLP/HTTP to a local sink;
* ``python api``-- :class:`gitaudit.instrumentation.git_api.Git` in this process
  (its events exported OTLP/HTTP to the same sink in a background batch);
* ``gitaudit git`` -- the CLI wrapper as a new process (Python start-up included).

and prints the median wall time (ms) per mode and the added time over plain
git: the median of per-round differences (ms, and % of plain's median).
Commands: ``git status``, ``git rev-parse HEAD``, ``git commit --allow-empty``,
a local clone of ``--source`` (hard links) and a
``--no-local`` clone (pack transfer through a ``git-upload-pack`` child).

Everything happens in a temporary directory: ``--source`` is only cloned from,
never written. The global git config is a temporary file (``GIT_CONFIG_GLOBAL``),
never ``~/.gitconfig``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# --- a local OTLP/HTTP sink -------------------------------------------------------------
class _Sink(BaseHTTPRequestHandler):
    posts = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).posts += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def start_sink() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --- the agent, in its own process --------------------------------------------------------
def agent_main(sock: str, endpoint: str, state: str) -> None:
    """Child-process mode: run the trace2 agent until SIGTERM, then print its stats."""
    from gitaudit.instrumentation import configure
    from gitaudit.instrumentation.trace2_agent import Trace2Agent

    provider = configure(endpoint=endpoint, service_name="bench-trace2")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with Trace2Agent(sock, state_file=state, emit_gap_event=False) as agent:
        print("ready", flush=True)
        done.wait()
    provider.shutdown()
    s = agent.stats
    print(f"agent: {s.events_emitted} events, {s.connections} connections, "
          f"{s.garbage_lines} garbage, {s.incomplete} incomplete", flush=True)


# --- measuring ------------------------------------------------------------------------------
def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e6


def gitaudit_cli() -> list[str] | None:
    """argv prefix that runs ``gitaudit git``; ``None`` when the command is not available."""
    exe = ROOT / ".venv" / "bin" / "gitaudit"
    if exe.exists():
        probe = subprocess.run([str(exe), "git", "--version"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.startswith("git version"):
            return [str(exe), "git"]
    try:
        from gitaudit.query.cli import git as _git  # noqa: F401
    except ImportError:
        return None
    # not registered on the main app yet: build the same command on a throw-away app
    code = ("import typer; from gitaudit.query.cli.git import CONTEXT_SETTINGS, git_command; "
            "a = typer.Typer(); a.command('git', context_settings=CONTEXT_SETTINGS)(git_command); "
            "a.command('noop')(lambda: None); a()")
    return [sys.executable, "-c", code, "git"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=21, help="runs per command and mode (median reported)")
    ap.add_argument("--clone-runs", type=int, default=9, help="runs per clone and mode")
    ap.add_argument("--source", default=str(ROOT), help="repository to clone from (read only)")
    ap.add_argument("--no-cli", action="store_true", help="skip the 'gitaudit git' process wrapper")
    ap.add_argument("--agent", nargs=3, metavar=("SOCK", "ENDPOINT", "STATE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.agent:
        agent_main(*args.agent)
        return

    tmp = Path(tempfile.mkdtemp(prefix="gab-", dir="/tmp"))  # short: AF_UNIX paths <= 107 bytes
    sink, endpoint = start_sink()
    agent_proc = None
    try:
        from gitaudit.instrumentation import configure
        from gitaudit.instrumentation.git_api import Git
        from gitaudit.instrumentation.trace2_install import install

        sock = str(tmp / "t2.sock")
        plain_cfg, t2_cfg = tmp / "plain.gitconfig", tmp / "trace2.gitconfig"
        plain_cfg.write_text("")
        install(sock, git_config_file=t2_cfg)
        base = dict(os.environ, HOME=str(tmp), GIT_CONFIG_NOSYSTEM="1", GITAUDIT_ENDPOINT=endpoint,
                    GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
                    GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
        base.pop("GIT_TRACE2_PARENT_SID", None)
        env_plain = {**base, "GIT_CONFIG_GLOBAL": str(plain_cfg)}
        env_t2 = {**base, "GIT_CONFIG_GLOBAL": str(t2_cfg)}
        os.environ.update({k: env_plain[k] for k in ("HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM",
                                                     "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
                                                     "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")})

        agent_proc = subprocess.Popen(
            [sys.executable, __file__, "--agent", sock, endpoint, str(tmp / "agent-state.json")],
            stdout=subprocess.PIPE, text=True)
        assert agent_proc.stdout is not None and agent_proc.stdout.readline().strip() == "ready"

        provider = configure(endpoint=endpoint, service_name="bench-wrapper")
        work = tmp / "work"
        subprocess.run(["git", "clone", "-q", args.source, str(work)], env=env_plain, check=True)
        api = Git(work)
        cli = None if args.no_cli else gitaudit_cli()

        def run(argv: list[str], env: dict[str, str], cwd: Path = work) -> None:
            subprocess.run(argv, env=env, cwd=cwd, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        counter = iter(range(10**9))

        def dest() -> str:
            return str(tmp / f"clone{next(counter)}")

        commands: list[tuple[str, list[str], Callable[[], object], int]] = [
            ("git status", ["status"], lambda: api.command("status", check=True), args.runs),
            ("git rev-parse HEAD", ["rev-parse", "HEAD"], lambda: api.command("rev-parse", "HEAD", check=True),
             args.runs),
            ("git commit --allow-empty", ["commit", "-q", "--allow-empty", "-m", "bench"],
             lambda: api.commit("bench", allow_empty=True, check=True), args.runs),
        ]
        clones = [
            ("git clone (local)", [], False, args.clone_runs),
            ("git clone --no-local", ["--no-local"], True, args.clone_runs),
        ]

        modes = ["plain", "trace2", "python api"] + (["gitaudit git"] if cli else [])
        results: list[tuple[str, dict[str, float], dict[str, float]]] = []

        def measure(name: str, fns: dict[str, Callable[[], object]], n: int) -> None:
            for fn in fns.values():  # warm up caches once per mode
                fn()
            samples: dict[str, list[float]] = {m: [] for m in fns}
            for _ in range(n):
                for mode, fn in fns.items():
                    samples[mode].append(timed(fn))
            med = {m: statistics.median(v) for m, v in samples.items()}
            # added time: median of the differences within a round (mode - plain, same round)
            added = {m: statistics.median(a - b for a, b in zip(v, samples["plain"]))
                     for m, v in samples.items() if m != "plain"}
            results.append((name, med, added))
            print(f"  measured {name}", file=sys.stderr, flush=True)

        for name, git_args, api_fn, n in commands:
            fns: dict[str, Callable[[], object]] = {
                "plain": lambda a=git_args: run(["git", *a], env_plain),
                "trace2": lambda a=git_args: run(["git", *a], env_t2),
                "python api": api_fn,
            }
            if cli:
                fns["gitaudit git"] = lambda a=git_args: run([*cli, *a], env_plain)
            measure(name, fns, n)

        for name, opts, _no_local, n in clones:
            src = args.source
            fns = {
                "plain": lambda o=opts: run(["git", "clone", "-q", *o, src, dest()], env_plain, tmp),
                "trace2": lambda o=opts: run(["git", "clone", "-q", *o, src, dest()], env_t2, tmp),
                "python api": (lambda: api.clone(src, dest(), check=True)) if not opts else
                (lambda o=opts: Git(tmp).command("clone", "-q", *o, src, dest(), check=True)),
            }
            if cli:
                fns["gitaudit git"] = lambda o=opts: run([*cli, "clone", "-q", *o, src, dest()], env_plain, tmp)
            measure(name, fns, n)

        provider.shutdown()
    finally:
        agent_line = ""
        if agent_proc is not None:
            agent_proc.send_signal(signal.SIGTERM)
            out, _ = agent_proc.communicate(timeout=30)
            agent_line = out.strip().splitlines()[-1] if out.strip() else ""
        sink.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    print_table(results, modes)
    print()
    print(f"runs: {args.runs} per command, {args.clone_runs} per clone, median; "
          f"source: {args.source}; git: {subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.strip()}")
    print(agent_line)
    print(f"OTLP sink received {_Sink.posts} export requests")
    if not cli and not args.no_cli:
        print("gitaudit git: not available (gitaudit.query.cli.git missing)")


def print_table(results: list[tuple[str, dict[str, float], dict[str, float]]], modes: list[str]) -> None:
    """Markdown table: median ms per mode, then added ms (and % of plain) over plain git.

    Added time is the median of per-round differences (each round runs every
    mode once, back to back), which cancels most machine drift.
    """
    added_modes = [m for m in modes if m != "plain"]
    head = ["command", "plain ms"] + [f"{m} ms" for m in added_modes] + [f"+{m}" for m in added_modes]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for name, med, added in results:
        plain = med["plain"]
        cells = [name, f"{plain:.2f}"] + [f"{med[m]:.2f}" for m in added_modes]
        for m in added_modes:
            d = added[m]
            cells.append(f"{d:+.2f} ms ({d / plain * 100:+.1f}%)")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
