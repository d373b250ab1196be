"""The `gitaudit sanitize` command: stdin -> stdout, --ndjson line by line, errors with exit code 2."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from gitaudit.query.cli.sanitize import sanitize

GHP = "ghp_" + "Qq1Ww2Ee3Rr4Tt5Yy6Uu7Ii8Oo9Pp0AaSsDd"
app = typer.Typer()
app.command()(sanitize)
runner = CliRunner()


def test_plain_text():
    """Plain mode masks secrets in the whole input and keeps the rest."""
    result = runner.invoke(app, [], input=f"line one\nexport TOKEN={GHP}\n")
    assert result.exit_code == 0
    assert result.stdout.startswith("line one\nexport TOKEN=[REDACTED:") and GHP not in result.stdout


def test_ndjson_in_order():
    """--ndjson sanitizes each JSON value (string, object, array) and writes one line each, in order."""
    lines = [json.dumps(f"tok {GHP}"), json.dumps({"password": "x", "n": 1}), json.dumps([1, GHP]), "", json.dumps(7)]
    result = runner.invoke(app, ["--ndjson"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0
    out = result.stdout.split("\n")
    assert GHP not in result.stdout
    assert json.loads(out[1])["n"] == 1 and json.loads(out[1])["password"].startswith("[REDACTED:sensitive-key:")
    assert json.loads(out[2])[0] == 1 and out[3] == "" and out[4] == "7"


def test_ndjson_invalid_line_exit_2():
    """An invalid JSON line: error naming the line number on stderr, exit code 2, no traceback."""
    result = runner.invoke(app, ["--ndjson"], input='"ok"\n{"a": \n')
    assert result.exit_code == 2
    assert "line 2" in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert result.stdout == '"ok"\n'


def test_rules_option(tmp_path):
    """--rules merges a user rules file over the packaged rules; a bad file is exit code 2."""
    user = tmp_path / "r.yaml"
    user.write_text("rules:\n  - id: ticket\n    pattern: 'TCK-[0-9]{4}'\n    keywords: ['TCK-']\n")
    result = runner.invoke(app, ["--rules", str(user)], input="see TCK-1234")
    assert result.exit_code == 0 and result.stdout.startswith("see [REDACTED:ticket:")
    user.write_text("rules: [{id: bad, pattern: '(?=x)'}]")
    result = runner.invoke(app, ["--rules", str(user)], input="x")
    assert result.exit_code == 2 and "does not compile" in result.stderr
