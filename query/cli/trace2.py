"""``gitaudit trace2``: the git trace2 agent (listen) and its git config (install, uninstall).

Register in the main app with ``app.add_typer(trace2.app, name="trace2")``.
Client side only: imports nothing of the server.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)

app = typer.Typer(
    help="Audit every git command on this machine via git's trace2 event stream "
    "(no code change; see 'gitaudit trace2 install').",
    no_args_is_help=True,
)

_SOCKET_HELP = "AF_UNIX socket path the agent listens on (at most 107 bytes)"


@app.command()
def listen(
    socket_path: Path = typer.Option(..., "--socket", help=_SOCKET_HELP),
    endpoint: str = typer.Option(None, "--endpoint", help="gitaudit server URL (env GITAUDIT_ENDPOINT)"),
    flush_timeout_s: float = typer.Option(
        3600.0, "--flush-timeout", min=1.0, help="seconds before a git command with no exit event "
        "is recorded as incomplete"),
    state_file: Path = typer.Option(None, "--state-file", help="start/stop record "
                                    "(env GITAUDIT_TRACE2_STATE)"),
    mode: str = typer.Option("0600", "--mode", help="socket permissions, octal (0666: all local users)"),
    service_name: str = typer.Option("gitaudit-trace2", "--service-name", help="service.name of the events"),
    org: str = typer.Option(None, "--org", help="audit.organization.id of the events "
                            "(env GITAUDIT_ORGANIZATION_ID; needed with organization-bound ingest keys)"),
) -> None:
    """Receive git's trace2 events and emit one audit event per git command, until SIGINT/SIGTERM."""
    from gitaudit.instrumentation import configure
    from gitaudit.instrumentation.trace2_agent import Trace2Agent

    try:
        socket_mode = int(mode, 8)
    except ValueError:
        err.print(f"[red]--mode must be octal, e.g. 0666, not {mode!r}[/]")
        raise typer.Exit(2) from None
    provider = configure(endpoint=endpoint, service_name=service_name, organization_id=org)
    try:
        agent = Trace2Agent(socket_path, flush_timeout_s=flush_timeout_s, state_file=state_file,
                            socket_mode=socket_mode)
        downtime = agent.start()
    except (ValueError, OSError) as exc:
        err.print(f"[red]cannot listen on {socket_path}: {exc}[/]")
        provider.shutdown()
        raise typer.Exit(1) from None

    done = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        done.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    gap = "[yellow]" if downtime.start_ns is not None else "[dim]"
    out.print(f"[green]listening[/] on {agent.socket_path} · {gap}{downtime.message}[/]", soft_wrap=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        agent.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        provider.shutdown()
    st = agent.stats
    out.print(
        f"stopped · {st.events_emitted} git commands audited ({st.incomplete} incomplete) · "
        f"{st.connections} connections ({st.rejected_connections} rejected) · "
        f"{st.garbage_lines} garbage lines skipped",
        soft_wrap=True,
    )


@app.command()
def install(
    socket_path: Path = typer.Option(..., "--socket", help=_SOCKET_HELP),
    system: bool = typer.Option(False, "--system", help="write the system config (all users; needs root) "
                                "instead of the user's global config"),
) -> None:
    """Set git's trace2.eventTarget to the agent's socket (global or system config)."""
    from gitaudit.instrumentation.trace2_install import install as do_install

    scope = "system" if system else "global"
    try:
        target = do_install(socket_path, scope)
    except RuntimeError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    out.print(f"[green]installed[/] trace2.eventTarget={target} ({scope} config)")


@app.command()
def uninstall(
    socket_path: Path = typer.Option(None, "--socket", help="remove only a target pointing here"),
    system: bool = typer.Option(False, "--system", help="the system config instead of the global one"),
) -> None:
    """Remove the agent's trace2.eventTarget from git's global (or system) config."""
    from gitaudit.instrumentation.trace2_install import uninstall as do_uninstall

    scope = "system" if system else "global"
    if do_uninstall(socket_path, scope):
        out.print(f"[green]removed[/] the trace2 target from the {scope} config")
    else:
        out.print(f"no gitaudit trace2 target in the {scope} config")
