"""``gitaudit gdpr``: data-subject access exports, erasure, and the Art. 30 record.

* ``gitaudit gdpr export --subject alice [--output alice.json]``: every stored
  and archived event about the subject as JSON plus a readable summary (Art. 15).
* ``gitaudit gdpr erase --subject alice``: destroy the subject's keys
  (crypto-shredding, Art. 17); events stay, unlinkable; refused under a legal hold.
* ``gitaudit gdpr article30``: the record of processing from the live configuration.

See :mod:`gitaudit.query.gdpr` for what each covers.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from .retention import open_runtime

app = typer.Typer(help="GDPR data-subject rights: access export, erasure, Art. 30 record.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@app.command("export")
def export_command(
    subject: str = typer.Option(..., "--subject", help="the subject's user id"),
    output: Path = typer.Option(None, "--output", "-o", help="write the JSON document here (default: stdout)"),
    no_archive: bool = typer.Option(False, "--no-archive", help="leave the S3 archive out"),
) -> None:
    """Art. 15 access: every stored and archived event about SUBJECT, as JSON, plus a summary."""
    from ..gdpr import export_subject

    rt = open_runtime()
    doc = export_subject(rt.store, subject, archive=None if no_archive else rt.archive,
                         policy_set=rt.policy_set(), ingest=rt.ingest, actor=rt.actor)
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if output:
        output.write_text(text, encoding="utf-8")
        out.print(doc["text"], markup=False, highlight=False)
        out.print(f"\nwritten to {output}", markup=False)
    else:
        print(text)


@app.command("erase")
def erase_command(
    subject: str = typer.Option(..., "--subject", help="the subject's user id"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Art. 17 erasure: destroy SUBJECT's keys so their events can no longer be linked to them."""
    from ..gdpr import ErasureBlocked, erase_subject

    if not yes and not typer.confirm(f"Erase {subject}? This cannot be undone."):
        raise typer.Exit(1)
    rt = open_runtime()
    try:
        result = erase_subject(rt.store, subject, archive=rt.archive, ingest=rt.ingest, actor=rt.actor)
    except ErasureBlocked as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(3) from None
    out.print(f"erased: {result['keys_destroyed']} key(s) destroyed, {result['events_unlinked']} event(s) "
              f"unlinked (request {result['request_id']})")
    if result["plaintext_events"]:
        err.print(f"[yellow]warning:[/] {result['plaintext_events']} event(s) stored before subject pseudonyms "
                  "were enabled still carry this id in clear; crypto-shredding cannot reach them")
    if not result["keys_destroyed"] and result["plaintext_events"]:
        err.print("[red]error:[/] nothing was erased: this subject's events are stored in clear "
                  "(set GITAUDIT_GDPR_SUBJECT_PSEUDONYMS=true so new events can be erased)", highlight=False)
        raise typer.Exit(4)


@app.command("article30")
def article30_command(
    as_json: bool = typer.Option(False, "--json", help="print JSON (default: readable text)"),
) -> None:
    """Art. 30 record of processing for the audit log, generated from the live configuration."""
    from ..gdpr import article30_record

    rt = open_runtime()
    record = article30_record(rt.store, policy_set=rt.policy_set(), archive=rt.archive,
                              sanitizer=rt.ingest.sanitizer if rt.ingest else None)
    if as_json:
        print(json.dumps(record, indent=2))
        return
    out.print(f"Record of processing (GDPR Art. 30), generated {record['generated_at']}", markup=False)
    out.print(f"Controller: {record['controller']}", markup=False)
    out.print(f"Processing: {record['processing']}", markup=False)
    out.print("Purposes: " + "; ".join(record["purposes"]), markup=False)
    out.print("Categories of personal data:", markup=False)
    for c in record["categories_of_personal_data"]:
        out.print(f"  - {c['field']} ({c['description']}): {c['treatment']}", markup=False)
    out.print("Retention:", markup=False)
    for r in record["retention"]:
        days = r["retention_days"] if r["policy"] else "until a policy applies"
        out.print(f"  - {r['category']} ({r['events']}): {days} days" if r["policy"] else
                  f"  - {r['category']} ({r['events']}): {days}", markup=False)
    out.print("Security measures:", markup=False)
    for m in record["security_measures"]:
        out.print(f"  - {m}", markup=False)
