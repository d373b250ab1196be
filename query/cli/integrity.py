"""``gitaudit seal`` / ``gitaudit verify`` / ``gitaudit public-key`` / ``gitaudit export-digests``.

Each command asks the running server (``--endpoint``, env ``GITAUDIT_ENDPOINT``;
the API key from ``GITAUDIT_API_KEY``) and, when none answers, opens the store
directly (settings from the environment, see :mod:`gitaudit.query.settings`)
with the signing key from ``GITAUDIT_SIGNING_KEY_FILE``
(:mod:`gitaudit.query.integrity_settings`).

``verify`` exits with status 1 when any window or chain does not verify, 2 on a
usage or store error, 0 when everything verifies.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from .server_client import auth_headers, call_server

out = Console()
err = Console(stderr=True)

app = typer.Typer(help="Integrity: seal stored events into signed digests, verify them, export the public key.",
                  no_args_is_help=True, add_completion=False)


def _server(method: str, endpoint: str | None, path: str, params: dict[str, Any]) -> Any | None:
    """Call the server; None when none answers; exits 2 on an error reply."""
    return call_server(method, endpoint, path, params, timeout_s=600)


def _open_store():
    from ..settings import Settings
    from ..store.client import StoreError, open_store

    from .local_store import require_store_dir

    settings = Settings()
    require_store_dir(settings.clickhouse_dsn)
    try:
        return open_store(settings.clickhouse_dsn, settings.database)
    except StoreError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None


def _time(value: str | None, name: str) -> int | None:
    from ..timefmt import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        err.print(f"error: --{name}: {exc}", markup=False)
        raise typer.Exit(2) from None


def _fmt(ns: Any) -> str:
    from ..timefmt import format_ns

    return "" if ns in (None, "") else format_ns(int(ns))[:19] + "Z"


def seal(
    org: str = typer.Option(None, "--org", help="seal only this organization (default: all)"),
    until: str = typer.Option(None, "--until", help="seal only windows ending at or before this time"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    endpoint: str = typer.Option(None, "--endpoint", help="server URL (env GITAUDIT_ENDPOINT)"),
) -> None:
    """Seal every closed time window (default one hour) into a signed, chained digest."""
    result = _server("POST", endpoint, "/api/v1/integrity/seal", {"org": org, "until": until})
    if result is None:
        result = _seal_locally(org, _time(until, "until"))
    if as_json:
        print(json.dumps(result, separators=(",", ":")))
        return
    table = Table(title=f"sealed {result['windows_sealed']} window(s), {result['addenda_sealed']} addendum "
                        f"digest(s), {result['events_sealed']} event(s); key {result['key_id']}")
    for col in ("org", "seq", "kind", "window start (UTC)", "window end (UTC)", "events", "digest"):
        table.add_column(col, overflow="fold")
    for d in result["digests"][-50:]:
        table.add_row(d["org"] or "(none)", str(d["seq"]), d["kind"], _fmt(d["window_start_ns"]),
                      _fmt(d["window_end_ns"]), str(d["event_count"]), d["digest"][:16])
    out.print(table)


def _seal_locally(org: str | None, until_ns: int | None) -> dict[str, Any]:
    from gitaudit.processors import Sanitizer

    from ..ingest.service import IngestService
    from ..integrity import seal as seal_store
    from ..integrity_events import record_seal
    from ..integrity_keys import SigningKeyError, load_signing_key
    from ..integrity_settings import IntegritySettings
    from ..store.client import StoreError

    settings = IntegritySettings()
    store = _open_store()
    try:
        report = seal_store(store, org=org, until_ns=until_ns, window_ns=settings.window_ns,
                            key=load_signing_key(settings.key_path()))
        record_seal(IngestService(store, Sanitizer.default()), report, actor=f"cli:{os.environ.get('USER', '')}")
    except (StoreError, SigningKeyError) as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    data = report.to_dict()
    return data


def verify(
    org: str = typer.Option(None, "--org", help="verify only this organization (default: all)"),
    from_: str = typer.Option(None, "--from", help="start (RFC 3339, date, Unix ns, now or -7d)"),
    to: str = typer.Option(None, "--to", help="end, exclusive"),
    public_key: Path = typer.Option(None, "--public-key", exists=True, dir_okay=False,
                                    help="PEM file of the trusted public key (default: the server's key)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    endpoint: str = typer.Option(None, "--endpoint", help="server URL (env GITAUDIT_ENDPOINT)"),
) -> None:
    """Recompute sealed digests and name every window changed, deleted, inserted or with a broken chain."""
    pem = public_key.read_text() if public_key else None
    params: dict[str, Any] = {"org": org, "from": from_, "to": to}
    if pem:
        from ..integrity_keys import load_public_key, raw_public_key

        try:
            params["public_key"] = base64.b64encode(raw_public_key(load_public_key(pem))).decode("ascii")
        except ValueError as exc:
            err.print(f"error: --public-key: {exc}", markup=False)
            raise typer.Exit(2) from None
    result = _server("GET", endpoint, "/api/v1/integrity/verify", params)
    if result is None:
        result = _verify_locally(org, _time(from_, "from"), _time(to, "to"), pem)
    if as_json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        _print_report(result)
    if not result["ok"]:
        raise typer.Exit(1)


def _verify_locally(org: str | None, from_ns: int | None, to_ns: int | None, pem: str | None) -> dict[str, Any]:
    from ..integrity import IntegrityError
    from ..integrity import verify as verify_store
    from ..store.client import StoreError

    store = _open_store()
    try:
        return verify_store(store, org=org, from_ns=from_ns, to_ns=to_ns, public_key=pem).to_dict()
    except (IntegrityError, StoreError) as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None


def _print_report(result: dict[str, Any]) -> None:
    problems = result["problems"]
    summary = (f"{len(result['organizations'])} organization(s), {result['digests_checked']} digest(s), "
               f"{result['windows_checked']} window(s), {result['events_checked']} event(s) checked")
    if not problems and not result["digests_checked"]:
        out.print(f"[yellow]nothing sealed yet[/]: {summary}. Windows are sealed once they have closed "
                  "(GITAUDIT_SEAL_WINDOW_S, default one hour, plus GITAUDIT_SEAL_GRACE_S); run `gitaudit seal` "
                  "then, or let the server's sealing job do it.")
    elif not problems:
        out.print(f"[green]verified[/]: {summary}; no change since sealing")
    else:
        table = Table(title=f"{len(problems)} problem(s): {summary}")
        for col in ("org", "window start (UTC)", "window end (UTC)", "kind", "seq", "uid", "detail"):
            table.add_column(col, overflow="fold")
        for p in problems:
            table.add_row(p["org"] or "(none)", _fmt(p["window_start_ns"]), _fmt(p["window_end_ns"]),
                          f"[red]{p['kind']}[/]", "" if p["seq"] is None else str(p["seq"]), p["uid"] or "",
                          p["detail"].replace("[", "("))
        out.print(table)
    if result["addenda"]:
        out.print(f"{len(result['addenda'])} addendum digest(s) hold events that arrived after their window was "
                  "sealed (listed with --json)")


def public_key(
    endpoint: str = typer.Option(None, "--endpoint", help="server URL (env GITAUDIT_ENDPOINT)"),
) -> None:
    """Print the Ed25519 public key (PEM) that verifies the digests."""
    result = _server("GET", endpoint, "/api/v1/integrity/public-key", {})
    if result is None:
        from ..integrity_keys import SigningKeyError, load_signing_key, public_key_pem
        from ..integrity_settings import IntegritySettings

        try:
            print(public_key_pem(load_signing_key(IntegritySettings().key_path(), create=False)), end="")
        except SigningKeyError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(2) from None
        return
    print(result["pem"], end="")


def export_digests(
    output: Path = typer.Option(..., "--output", "-o", dir_okay=False, help="NDJSON file to write"),
    org: str = typer.Option(None, "--org", help="only this organization"),
    from_: str = typer.Option(None, "--from", help="start (RFC 3339, date, Unix ns, now or -7d)"),
    to: str = typer.Option(None, "--to", help="end, exclusive"),
    endpoint: str = typer.Option(None, "--endpoint", help="server URL (env GITAUDIT_ENDPOINT)"),
) -> None:
    """Export digests and events as NDJSON for verification without gitaudit (docs/verify-digests.md)."""
    import httpx

    from gitaudit.instrumentation.configuration import resolve_endpoint

    params = {k: v for k, v in {"org": org, "from": from_, "to": to}.items() if v is not None}
    try:
        with httpx.stream("GET", f"{resolve_endpoint(endpoint)}/api/v1/integrity/export", params=params,
                          headers=auth_headers(), timeout=600) as resp:
            if resp.status_code != 200:
                err.print(f"error: HTTP {resp.status_code}: {resp.read()[:200].decode('utf-8', 'replace')}",
                          markup=False)
                raise typer.Exit(2)
            with output.open("wb") as fh:
                for chunk in resp.iter_bytes():
                    fh.write(chunk)
        out.print(f"wrote {output}")
        return
    except httpx.TransportError:
        pass
    from ..integrity_export import export_lines

    store = _open_store()
    with output.open("wb") as fh:
        for line in export_lines(store, org=org, from_ns=_time(from_, "from"), to_ns=_time(to, "to")):
            fh.write(line)
    out.print(f"wrote {output}")


app.command("seal")(seal)
app.command("verify")(verify)
app.command("public-key")(public_key)
app.command("export-digests")(export_digests)
