"""Unit tests of the sanitizer: replacement format, scope, idempotence, records, personal data, rules."""

from __future__ import annotations

import hashlib
import hmac
import textwrap

import pytest

from gitaudit.instrumentation import semconv
from gitaudit.processors import Sanitizer
from gitaudit.processors.personal_data import truncate_ip
from gitaudit.processors.ruleset import ENV_RULES, RuleError, load_default_rules, parse_rules
from gitaudit.processors.sanitizer import ENV_FINGERPRINT_KEY
from gitaudit.processors.validators import build_validator, luhn_valid, shannon_entropy

KEY = b"test-key"
GHP = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"  # fake, format-valid
GLPAT = "glpat-" + "xY7zW5vU3tS1rQ9pO7nM"


@pytest.fixture(scope="module")
def san() -> Sanitizer:
    return Sanitizer(fingerprint_key=KEY)


def fp(secret: str, key: bytes = KEY) -> str:
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()[:8]


def test_marker_format_is_rule_and_hmac_prefix(san):
    """A secret becomes [REDACTED:<rule>:<first 8 hex of HMAC-SHA256(key, secret)>]."""
    assert san.sanitize_text(f"token {GHP} leaked") == f"token [REDACTED:github-token:{fp(GHP)}] leaked"


def test_url_userinfo_keeps_user_and_host(san):
    """Only the password of https://user:secret@host is replaced; user, host and path stay."""
    out = san.sanitize_text("https://alice:s3cretPass9@github.com/org/repo.git")
    assert out == f"https://alice:[REDACTED:url-userinfo:{fp('s3cretPass9')}]@github.com/org/repo.git"


def test_assignment_keeps_key(san):
    """password=value keeps the key and masks the value only."""
    assert san.sanitize_text("DB_PASSWORD=hunter2x") == f"DB_PASSWORD=[REDACTED:secret-assignment:{fp('hunter2x')}]"


def test_every_match_is_masked(san):
    """Three secrets in one value are all masked, not just the first or last."""
    text = f"a={GHP} b={GLPAT} c={GHP}"
    out = san.sanitize_text(text)
    assert GHP not in out and GLPAT not in out
    assert out.count("[REDACTED:") == 3


def test_same_secret_same_fingerprint_different_key_differs():
    """Equal secrets correlate under one key; another key gives another fingerprint."""
    a = Sanitizer(fingerprint_key=b"k1").sanitize_text(GHP)
    b = Sanitizer(fingerprint_key=b"k1").sanitize_text(f"x {GHP}")
    c = Sanitizer(fingerprint_key=b"k2").sanitize_text(GHP)
    assert a in b and a != c


def test_fingerprint_key_from_env(monkeypatch):
    """Without an argument the key comes from GITAUDIT_FINGERPRINT_KEY; unset means a random per-process key."""
    monkeypatch.setenv(ENV_FINGERPRINT_KEY, "env-key")
    s = Sanitizer()
    assert s.sanitize_text(GHP) == f"[REDACTED:github-token:{fp(GHP, b'env-key')}]"
    assert not s.ephemeral_key
    monkeypatch.delenv(ENV_FINGERPRINT_KEY)
    assert Sanitizer().ephemeral_key


@pytest.mark.parametrize(
    "text",
    [
        "0123456789abcdef0123456789abcdef01234567",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "0193a5f2-7c1b-7d2e-9a4b-123456789abc",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        "/home/alice/src/widgets/.git/config",
        "feature/token-refresh",
        "Fix password reset flow for SSO users",
        "https://github.com/acme/widgets.git",
        "git@github.com:acme/widgets.git",
    ],
)
def test_never_touched(san, text):
    """SHAs, UUIDs, trace/span ids, paths, branch names, commit messages, plain URLs and scp remotes stay."""
    assert san.sanitize_text(text) == text


def test_idempotent(san):
    """Sanitizing twice equals sanitizing once, for text with markers of several rules."""
    text = f"curl -u bob:pw9Xyz12 https://x:{GLPAT}@h/r Authorization: Bearer abcDEF1234567890 {GHP}"
    once = san.sanitize_text(text)
    assert san.sanitize_text(once) == once


def test_pem_block_over_lines(san):
    """A private key block spanning lines is masked between its header and footer."""
    body = "MIIEowIBAAKCAQEA" + "Qk" * 40
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\nAbCd\n-----END RSA PRIVATE KEY-----"
    out = san.sanitize_text("key:\n" + pem + "\ndone")
    assert body not in out and "AbCd" not in out
    assert out.startswith("key:\n-----BEGIN RSA PRIVATE KEY-----[REDACTED:private-key:")
    assert out.endswith("-----END RSA PRIVATE KEY-----\ndone")


def test_card_numbers_luhn_only(san):
    """A Luhn-valid card number is masked in text and as an int; a Luhn-invalid one is not."""
    assert "4111111111111111" not in san.sanitize_text("pan 4111 1111 1111 1111")
    assert san.sanitize_value(4111111111111111) == f"[REDACTED:credit-card:{fp('4111111111111111')}]"
    assert san.sanitize_text("order 4111111111111112") == "order 4111111111111112"
    assert san.sanitize_value(1732899662123456789) == 1732899662123456789


def test_sanitize_value_nested_types(san):
    """Strings inside lists and maps, bytes, and map keys are sanitized; other scalars kept."""
    value = {
        "argv": ["git", "push", f"https://x:{GLPAT}@h/r.git"],
        "raw": f"tok {GHP}".encode(),
        GHP: 1,
        "n": 1.5,
        "ok": True,
        "nested": {"headers": {"Authorization": "Bearer abcDEF1234567890"}},
        "tuple": ("a", GHP),
    }
    out = san.sanitize_value(value)
    assert GLPAT not in out["argv"][2] and out["argv"][:2] == ["git", "push"]
    assert isinstance(out["raw"], bytes) and GHP.encode() not in out["raw"]
    assert GHP not in "".join(out) and out["n"] == 1.5 and out["ok"] is True
    assert out["nested"]["headers"]["Authorization"].startswith("[REDACTED:sensitive-key:")
    assert out["tuple"][0] == "a" and GHP not in out["tuple"][1]


def test_sensitive_key_masks_whole_value_keeps_key(san):
    """Values under credential-named keys are masked whole, whatever they look like; bools stay."""
    out = san.sanitize_value(
        {"password": "a", "x-api-key": "short", "cookie": ["a=1", "b=2"], "db.password": 1234, "password_set": True,
         "gen_ai.usage.input_tokens": 12}
    )
    assert out["password"].startswith("[REDACTED:sensitive-key:")
    assert out["x-api-key"].startswith("[REDACTED:sensitive-key:")
    assert all(v.startswith("[REDACTED:sensitive-key:") for v in out["cookie"])
    assert out["db.password"].startswith("[REDACTED:sensitive-key:")
    assert out["password_set"] is True and out["gen_ai.usage.input_tokens"] == 12


def test_multibyte_text_kept_intact(san):
    """Non-ASCII text around a secret is kept byte-exact (no split UTF-8 character)."""
    out = san.sanitize_text(f"üñí {GHP} ✓ 日本")
    assert out == f"üñí [REDACTED:github-token:{fp(GHP)}] ✓ 日本"


def test_record_counts_and_rules(san):
    """sanitize_record masks body and attributes and sets audit.redacted.count / .rules."""
    rec = san.sanitize_record(f"clone {GHP}", {"vcs.repository.url.full": f"https://o:{GLPAT}@h/r.git"})
    assert rec.redacted_count == 2 and rec.rules == ["github-token", "gitlab-token"]
    assert rec.attributes[semconv.AUDIT_REDACTED_COUNT] == 2
    assert rec.attributes[semconv.AUDIT_REDACTED_RULES] == ["github-token", "gitlab-token"]
    assert GHP not in rec.body


def test_record_adds_to_existing_counters(san):
    """Re-sanitizing a record that already carries counters adds to them, never resets."""
    rec = san.sanitize_record(
        GHP, {semconv.AUDIT_REDACTED_COUNT: 3, semconv.AUDIT_REDACTED_RULES: ["jwt"], "note": "[REDACTED:jwt:01234567]"}
    )
    assert rec.attributes[semconv.AUDIT_REDACTED_COUNT] == 4
    assert rec.attributes[semconv.AUDIT_REDACTED_RULES] == ["github-token", "jwt"]
    again = san.sanitize_record(rec.body, rec.attributes)
    assert again.attributes == rec.attributes and again.redacted_count == 0


def test_clean_record_gets_no_counters(san):
    """A record with nothing to mask gets no audit.redacted.* attributes."""
    rec = san.sanitize_record("git push", {"vcs.ref.head.name": "main"})
    assert rec.attributes == {"vcs.ref.head.name": "main"} and rec.redacted_count == 0


def test_resource_attributes_sanitized(san):
    """Resource attribute values are sanitized too."""
    rec = san.sanitize_record("x", {}, {"service.name": "svc", "deploy.url": f"https://u:{GLPAT}@h"})
    assert rec.resource_attributes["service.name"] == "svc"
    assert GLPAT not in rec.resource_attributes["deploy.url"]


def test_email_pseudonymized_per_organization(san):
    """user.email is pseudonymized by default; same org -> same value, other org -> other value."""
    a = san.sanitize_record("", {"user.email": "Ann@Example.com"}, organization_id="o1").attributes["user.email"]
    b = san.sanitize_record("", {"user.email": "ann@example.com", "audit.organization.id": "o1"}).attributes
    c = san.sanitize_record("", {"user.email": "ann@example.com"}, organization_id="o2").attributes["user.email"]
    assert a.startswith("[PSEUDONYM:") and a == b["user.email"] and a != c
    assert "ann" not in a.lower()
    assert san.sanitize_record("", {"user.email": a}, organization_id="o1").attributes["user.email"] == a


def test_personal_data_actions():
    """truncate keeps the /24 or /48 network, drop removes, keep leaves, user.id kept by default."""
    s = Sanitizer(fingerprint_key=KEY, personal_data={"client.address": "truncate", "user.name": "drop"})
    attrs = s.sanitize_record("", {"client.address": "203.0.113.77", "user.name": "Ann", "user.id": "u-1"}).attributes
    assert attrs == {"client.address": "203.0.113.0", "user.id": "u-1"}
    v6 = s.sanitize_record("", {"client.address": "[2001:db8:1:2::5]:443"}).attributes["client.address"]
    assert v6 == "2001:db8:1::"


def test_truncate_ip_forms():
    """truncate_ip handles IPv4 with port, IPv6, IPv4-mapped IPv6 and rejects host names."""
    assert truncate_ip("10.1.2.3:8080") == "10.1.2.0"
    assert truncate_ip("2001:db8:abcd:12::1") == "2001:db8:abcd::"
    assert truncate_ip("::ffff:192.0.2.9") == "192.0.2.0"
    assert truncate_ip("git.example.com") is None


def test_validators():
    """Luhn, entropy, JWT and Basic validators accept the real shape and reject look-alikes."""
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert shannon_entropy(b"aaaa") == 0.0 and shannon_entropy(b"abcd") == 2.0
    assert build_validator("basic_auth")(b"dXNlcjpwYXNz") and not build_validator("basic_auth")(b"authentication")
    assert build_validator("jwt")(b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig")
    assert not build_validator("jwt")(b"eyJub3QiOiJqd3QifQ.eyJzdWIiOiIxIn0.sig")
    with pytest.raises(ValueError, match="unknown validator"):
        build_validator("nope")


def test_user_rules_override_disable_and_add(tmp_path, monkeypatch):
    """A user file from GITAUDIT_SANITIZER_RULES replaces, disables and appends rules."""
    user = tmp_path / "rules.yaml"
    user.write_text(
        textwrap.dedent(
            """
            version: 1
            rules:
              - id: github-token
                enabled: false
              - id: internal-ticket-token
                pattern: '\\bITT-[0-9]{6}\\b'
                keywords: ['ITT-']
            personal_data:
              user.email: drop
            """
        )
    )
    monkeypatch.setenv(ENV_RULES, str(user))
    rules = load_default_rules()
    assert "github-token" not in rules.ids and rules.ids[-1] == "internal-ticket-token"
    s = Sanitizer(rules, fingerprint_key=KEY)
    assert s.sanitize_text("see ITT-123456") == f"see [REDACTED:internal-ticket-token:{fp('ITT-123456')}]"
    assert s.sanitize_record("", {"user.email": "a@b.c"}).attributes == {}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("rules: [{id: x, pattern: '(a'}]", "does not compile"),
        ("rules: [{id: x, pattern: '(?=a)'}]", "does not compile"),
        ("rules: [{id: X Y, pattern: a}]", "id must be"),
        ("rules: [{id: x}]", "needs a 'pattern'"),
        ("rules: [{id: x, pattern: a, validate: [bogus]}]", "unknown validator"),
        ("rules: [{id: x, pattern: a, scopes: [everywhere]}]", "scopes"),
        ("rules: [{id: x, pattern: '{{NOPE}}'}]", "unknown var"),
        ("version: 9", "unsupported rules version"),
        ("personal_data: {user.email: shred}", "personal_data"),
    ],
)
def test_bad_rules_rejected(doc, message):
    """Malformed rules raise RuleError naming the problem (look-around is refused: RE2 only)."""
    with pytest.raises(RuleError, match=message):
        parse_rules(doc, origin="t.yaml")


def test_default_is_cached():
    """Sanitizer.default() returns one process-wide instance."""
    Sanitizer.reset_default()
    assert Sanitizer.default() is Sanitizer.default()
    Sanitizer.reset_default()


def test_evidence_attribute_names_match_semconv():
    """The sanitizer's evidence keys are the semconv constants."""
    from gitaudit.processors import sanitizer as mod

    assert mod._COUNT == semconv.AUDIT_REDACTED_COUNT
    assert mod._RULES == semconv.AUDIT_REDACTED_RULES
    assert mod._ORG == semconv.AUDIT_ORGANIZATION_ID


def test_issue_families_all_have_rules():
    """Every family the issue lists has a rule in the packaged set."""
    ids = set(load_default_rules(user_path="").ids)
    for rid in [
        "private-key", "aws-access-key-id", "aws-secret-access-key", "github-token", "github-fine-grained-pat",
        "gitlab-token", "slack-token", "stripe-key", "google-api-key", "openai-api-key", "anthropic-api-key",
        "npm-token", "pypi-token", "azure-storage-key", "sendgrid-api-key", "twilio-api-key", "jwt",
        "authorization-bearer", "authorization-basic", "url-userinfo", "secret-assignment", "secret-assignment-json",
        "secret-assignment-yaml", "secret-cli-flag", "sensitive-key", "credit-card",
    ]:
        assert rid in ids, rid


def test_sensitive_key_mixed_values(san):
    """Under a credential key: markers kept, text around them masked, bytes/maps/floats masked, blanks kept."""
    out = san.sanitize_value(
        {
            "authorization": "Bearer [REDACTED:authorization-bearer:0123abcd]",
            "token": b"raw-bytes",
            "credentials": {"user": "u", "nested": ["p1", 2.5]},
            "secret": "   ",
            "password": "[REDACTED:x:01234567]",
        }
    )
    assert out["authorization"].startswith("[REDACTED:sensitive-key:")
    assert out["authorization"].endswith("[REDACTED:authorization-bearer:0123abcd]")
    assert isinstance(out["token"], bytes) and out["token"].startswith(b"[REDACTED:sensitive-key:")
    assert all(str(v).startswith("[REDACTED:sensitive-key:") for v in [out["credentials"]["user"], *out["credentials"]["nested"]])
    assert out["secret"] == "   " and out["password"] == "[REDACTED:x:01234567]"
    assert san.sanitize_value(out) == out


def test_more_validators():
    """base64_bytes, not_path, min_length, entropy and char_classes accept and reject as documented."""
    import base64

    assert build_validator({"base64_bytes": 4})(base64.b64encode(b"abcd"))
    assert not build_validator({"base64_bytes": 4})(b"!!!!")
    assert not build_validator("not_path")(b"/home/x") and not build_validator("not_path")(b"C:\\x")
    assert build_validator("not_path")(b"hunter2")
    assert build_validator({"min_length": 3})(b"abc") and not build_validator({"min_length": 3})(b"ab")
    assert build_validator({"char_classes": 3})(b"aB3") and not build_validator({"char_classes": 2})(b"abc")
    with pytest.raises(ValueError, match="needs an argument"):
        build_validator("entropy")
    with pytest.raises(ValueError, match="takes no argument"):
        build_validator({"luhn": 3})
    with pytest.raises(ValueError, match="bad argument"):
        build_validator({"entropy": "high"})


def test_ruleset_lookup_and_sanitizer_from_path(tmp_path):
    """RuleSet.get finds rules by id (KeyError otherwise); Sanitizer accepts a rules file path."""
    rules = load_default_rules(user_path="")
    assert rules.get("jwt").id == "jwt"
    with pytest.raises(KeyError):
        rules.get("nope")
    user = tmp_path / "u.yaml"
    user.write_text("rules: [{id: jwt, enabled: false}]\n")
    assert "jwt" not in Sanitizer(user, fingerprint_key=KEY).rules.ids


def test_lone_surrogates_and_odd_types(san):
    """Lone surrogates (from surrogateescape'd output) and unknown types never crash the sanitizer."""
    assert san.sanitize_text("bad \udc80 byte") == "bad \udc80 byte"
    out = san.sanitize_text(f"\udc80 {GHP}")
    assert GHP not in out

    class Obj:
        def __str__(self) -> str:
            return f"obj {GHP}"

    assert GHP not in san.sanitize_value(Obj())
