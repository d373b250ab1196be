"""Deterministic generator of the sanitizer's labeled corpus (fake, format-valid secrets).

No real secret is stored anywhere: every token is made here from a seeded
``random.Random``, in the documented format of its provider (prefix, length,
alphabet; JWT headers that decode; Luhn-valid card numbers; Basic values that
decode to ``user:password``), and placed into the contexts an audit log of a
git service sees: URLs, HTTP headers, JSON, YAML, env dumps, command lines,
PEM blocks over several lines, stderr of failed git commands, prose.

``python tests/corpus/sanitizer/generate.py [outdir]`` writes ``secrets.jsonl``
(``{"family", "context", "text", "secrets"}`` per line) and ``benign.txt``
(the committed hand-written look-alikes plus generated ones) for inspection;
the tests call :func:`secret_cases` and :func:`benign_lines` directly.
"""

from __future__ import annotations

import base64
import json
import random
import string
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
SEED = 20251129


@dataclass(frozen=True)
class Case:
    """One secret-bearing line: ``text`` must lose every string in ``secrets``."""

    family: str
    context: str
    text: str
    secrets: tuple[str, ...]


def _s(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _mixed(rng: random.Random, alphabet: str, n: int) -> str:
    """Random string with at least one lower, one upper and one digit (as real tokens have)."""
    while True:
        s = _s(rng, alphabet, n)
        if any(c.islower() for c in s) and any(c.isupper() for c in s) and any(c.isdigit() for c in s):
            return s


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + _s(rng, string.digits, length - len(prefix) - 1)
    for check in string.digits:
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def _entropy(s: str) -> float:
    import math
    from collections import Counter

    return -sum(c / len(s) * math.log2(c / len(s)) for c in Counter(s).values())


def password(rng: random.Random) -> str:
    """A password of 12-20 chars mixing classes and URL-safe punctuation."""
    return _mixed(rng, ALNUM + "!*+_.-", rng.randint(12, 20))


def aws_secret(rng: random.Random) -> str:
    while True:
        s = _mixed(rng, B64, 40)
        if _entropy(s) >= 4.4:
            return s


# family -> factory of one token (families detectable by their own format, in any context)
TOKENS = {
    "github-token": lambda r: r.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + _mixed(r, ALNUM, 36),
    "github-fine-grained-pat": lambda r: "github_pat_" + _mixed(r, ALNUM, 22) + "_" + _mixed(r, ALNUM, 59),
    "gitlab-token": lambda r: r.choice(["glpat-", "gldt-", "glrt-", "glcbt-", "glptt-", "glft-", "gloas-"])
    + _mixed(r, ALNUM + "_-", 20 + r.randint(0, 12)),
    "gitlab-runner-registration-token": lambda r: "GR1348941" + _mixed(r, ALNUM + "_-", 20),
    "aws-access-key-id": lambda r: r.choice(["AKIA", "ASIA"]) + _s(r, string.ascii_uppercase + "234567", 16),
    "slack-token": lambda r: r.choice(["xoxb-", "xoxp-", "xoxa-", "xoxe-"])
    + _s(r, string.digits, 12) + "-" + _s(r, string.digits, 13) + "-" + _mixed(r, ALNUM, 24),
    "stripe-key": lambda r: r.choice(["sk_live_", "sk_test_", "rk_live_"]) + _mixed(r, ALNUM, 24 + r.randint(0, 75)),
    "google-api-key": lambda r: "AIza" + _mixed(r, B64URL, 35),
    "google-oauth": lambda r: r.choice(["GOCSPX-" + _mixed(r, B64URL, 28), "ya29." + _mixed(r, B64URL, 60)]),
    "openai-api-key": lambda r: r.choice(
        [
            "sk-proj-" + _mixed(r, B64URL, 80),
            "sk-" + _mixed(r, ALNUM, 20) + "T3BlbkFJ" + _mixed(r, ALNUM, 20),
            "sk-svcacct-" + _mixed(r, B64URL, 60),
            "sk-" + _mixed(r, ALNUM, 48),
        ]
    ),
    "anthropic-api-key": lambda r: "sk-ant-" + r.choice(["api03-", "admin01-"]) + _mixed(r, B64URL, 93) + "AA",
    "npm-token": lambda r: "npm_" + _mixed(r, ALNUM, 36),
    "pypi-token": lambda r: "pypi-AgEIcHlwaS5vcmc" + _mixed(r, B64URL, 70 + r.randint(0, 100)),
    "sendgrid-api-key": lambda r: "SG." + _mixed(r, B64URL, 22) + "." + _mixed(r, B64URL, 43),
    "twilio-api-key": lambda r: "SK" + _s(r, HEX, 32),
    "jwt": lambda r: ".".join(
        [
            _b64url(json.dumps({"alg": r.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}).encode()),
            _b64url(json.dumps({"sub": str(r.randint(1, 10**6)), "iat": 1732900000 + r.randint(0, 10**6)}).encode()),
            _b64url(r.randbytes(32)),
        ]
    ),
    "hashicorp-vault-token": lambda r: r.choice(["hvs.", "hvb."]) + _mixed(r, B64URL, 90),
    "digitalocean-token": lambda r: r.choice(["dop_v1_", "doo_v1_"]) + _s(r, HEX, 64),
    "docker-hub-token": lambda r: "dckr_pat_" + _mixed(r, B64URL, 27),
    "huggingface-token": lambda r: "hf_" + _s(r, string.ascii_letters, 34),
    "shopify-token": lambda r: r.choice(["shpat_", "shpss_"]) + _s(r, HEX, 32),
    "postman-api-key": lambda r: "PMAK-" + _s(r, HEX, 24) + "-" + _s(r, HEX, 34),
    "grafana-token": lambda r: "glsa_" + _mixed(r, ALNUM, 32) + "_" + _s(r, HEX, 8),
    "linear-api-key": lambda r: "lin_api_" + _mixed(r, ALNUM, 40),
    "databricks-token": lambda r: "dapi" + _s(r, HEX, 32),
    "telegram-bot-token": lambda r: str(r.randint(10**8, 10**9)) + ":AA" + _mixed(r, B64URL, 33),
    "age-secret-key": lambda r: "AGE-SECRET-KEY-1" + _s(r, string.ascii_uppercase + string.digits, 58),
    "bitbucket-atlassian-token": lambda r: "ATATT3" + _mixed(r, B64URL, 180),
    "mailgun-key": lambda r: "key-" + _s(r, HEX, 32),
    "sentry-token": lambda r: "sntrys_" + _mixed(r, B64URL, 60),
    "azure-ad-client-secret": lambda r: _mixed(r, ALNUM, 3) + str(r.randint(0, 9)) + "Q~" + _mixed(r, ALNUM + "_-", 34),
    "hashicorp-terraform-token": lambda r: _mixed(r, ALNUM, 14) + ".atlasv1." + _mixed(r, B64URL, 67),
    "slack-webhook": lambda r: "https://hooks.slack.com/services/T"
    + _s(r, string.ascii_uppercase + string.digits, 8) + "/B" + _s(r, string.ascii_uppercase + string.digits, 8)
    + "/" + _mixed(r, ALNUM, 24),
}

# Contexts in which only the token's own format can give it away (no credential-named key).
FORMAT_ONLY_CONTEXTS = [
    ("prose", "rotated leaked credential {t} after the incident"),
    ("json", '{{"event":"deploy","config":{{"value":"{t}"}},"ok":true}}'),
    ("log", "2025-11-29T17:01:02.123Z ERROR upstream rejected {t} (status=401)"),
    ("python-repr", "args=['--config', '{t}', '--verbose']"),
    ("commit-message", "Remove accidentally committed {t} from settings.py"),
    ("diff", "+    client = Client('{t}')"),
]

# Contexts that name the credential (each family also goes through a few of these).
NAMED_CONTEXTS = [
    ("env", "export GITHUB_TOKEN={t}"),
    ("env", "API_KEY={t}"),
    ("url", "git clone https://x-access-token:{t}@github.com/acme/widgets.git"),
    ("header", "Authorization: Bearer {t}"),
    ("cli", 'curl -sS -H "Authorization: token {t}" https://api.github.com/user'),
    ("yaml", "  api_key: {t}"),
    ("git-stderr", "fatal: unable to access 'https://oauth2:{t}@gitlab.example.com/grp/proj.git/': The requested URL returned error: 403"),
    ("json", '{{"headers":{{"X-Api-Key":"{t}"}},"path":"/v1/repos"}}'),
    ("double-json", '{{"body":"{{\\"token\\": \\"{t}\\", \\"repo\\": \\"acme/web\\"}}"}}'),
    ("npmrc", "//registry.npmjs.org/:_authToken={t}"),
    ("query", "GET /api/v4/projects?private_token={t}&per_page=100"),
    ("cli", "gh auth login --with-token {t}"),
    ("toml", 'token = "{t}"'),
]


def _pem(rng: random.Random, kind: str) -> tuple[str, list[str]]:
    heads = {
        "rsa": ("RSA PRIVATE KEY", "MIIEowIBAAKCAQEA"),
        "pkcs8": ("PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
        "ec": ("EC PRIVATE KEY", "MHcCAQEEI"),
        "openssh": ("OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"),
        "encrypted": ("ENCRYPTED PRIVATE KEY", "MIIFHzBJBgkqhkiG9w0BBQ0wPDAbBgkqhkiG9w0BBQww"),
        "dsa": ("DSA PRIVATE KEY", "MIIBuwIBAAKBgQ"),
        "pgp": ("PGP PRIVATE KEY BLOCK", "lQOYBGVxyz"),
    }
    label, start = heads[kind]
    body = start + _s(rng, B64, 64 * rng.randint(2, 5) - len(start))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    if kind == "pgp":
        text = f"-----BEGIN {label}-----\nVersion: GnuPG v2\n\n" + "\n".join(lines) + f"\n=AbCd\n-----END {label}-----"
    else:
        text = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"
    return text, lines


def secret_cases(seed: int = SEED) -> list[Case]:
    """The labeled secret corpus (deterministic for a given seed)."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for family, make in TOKENS.items():
        for context, template in FORMAT_ONLY_CONTEXTS:
            t = make(rng)
            cases.append(Case(family, context, template.format(t=t), (t,)))
        for context, template in rng.sample(NAMED_CONTEXTS, 4):
            t = make(rng)
            cases.append(Case(family, context, template.format(t=t), (t,)))
    for context, template in NAMED_CONTEXTS:  # generic opaque tokens: only the context tells
        t = _mixed(rng, ALNUM, 32)
        cases.append(Case("opaque-token", context, template.format(t=t), (t,)))

    # AWS secret keys need their "aws" context.
    for template in [
        "aws_secret_access_key = {s}",
        "export AWS_SECRET_ACCESS_KEY={s}",
        '{{"AccessKeyId":"{k}","SecretAccessKey":"{s}"}}',
        "AWS_SECRET_ACCESS_KEY: {s}",
        "aws configure set aws_secret_access_key {s}",
        "[default]\naws_access_key_id = {k}\naws_secret_access_key = {s}",
    ]:
        for _ in range(2):
            k, s = TOKENS["aws-access-key-id"](rng), aws_secret(rng)
            cases.append(Case("aws-secret-access-key", "config", template.format(k=k, s=s), (s, k) if "{k}" in template else (s,)))

    # Azure storage keys and connection strings.
    for _ in range(6):
        key = base64.b64encode(rng.randbytes(64)).decode()
        acct = "st" + _s(rng, string.ascii_lowercase, 8)
        text = rng.choice(
            [
                f"DefaultEndpointsProtocol=https;AccountName={acct};AccountKey={key};EndpointSuffix=core.windows.net",
                f'AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=https;AccountName={acct};AccountKey={key}"',
                f"Endpoint=sb://{acct}.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={key}",
            ]
        )
        cases.append(Case("azure-storage-key", "connection-string", text, (key,)))
    for _ in range(3):
        sig = base64.b64encode(rng.randbytes(32)).decode().replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        text = f"https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&ss=b&srt=o&sp=r&se=2025-12-01T00:00:00Z&sig={sig}"
        cases.append(Case("azure-sas", "url", text, (sig,)))

    # Twilio auth token (32 hex) needs its context.
    for template in ["TWILIO_AUTH_TOKEN={s}", "twilio_auth_token: {s}", '{{"twilio":{{"auth_token":"{s}"}}}}']:
        s = _s(rng, HEX, 32)
        cases.append(Case("twilio-auth-token", "config", template.format(s=s), (s,)))

    # Passwords in every assignment form.
    pw_templates = [
        ("env", "DB_PASSWORD={p}"),
        ("env", "export PGPASSWORD='{p}'"),
        ("env", 'MYSQL_ROOT_PASSWORD="{p}"'),
        ("json", '{{"username":"deploy","password":"{p}"}}'),
        ("json", '{{"db":{{"host":"db.internal","port":5432,"passwd":"{p}"}}}}'),
        ("double-json", '{{"msg":"{{\\"user\\": \\"bob\\", \\"password\\": \\"{p}\\"}}"}}'),
        ("python-repr", "{{'user': 'bob', 'password': '{p}'}}"),
        ("yaml", "password: {p}"),
        ("yaml", "  db_password: \"{p}\""),
        ("yaml", "- client_secret: {p}  # rotated 2025-11"),
        ("log", "login failed, password: {p}"),
        ("log", "x token=abc password: {p}"),
        ("log", "config password: {p}, retrying"),
        ("cli", "mysql -u root -p{p} -h db.internal app"),
        ("cli", "mysqldump -uroot -p{p} --all-databases"),
        ("ini", "secret_key = \"{p}\""),
        ("cli", "mysql --user=root --password={p} -h db.internal"),
        ("cli", "docker login --username ci --password {p} registry.example.com"),
        ("cli", "curl -u admin:{p} https://jenkins.example.com/api/json"),
        ("cli", "vault login -method=userpass username=ops password={p}"),
        ("url", "git clone https://alice:{p}@git.example.com/team/app.git"),
        ("url", "pushurl = https://ci-bot:{p}@bitbucket.org/acme/infra.git"),
        ("url", "postgres://app:{p}@db.internal:5432/app?sslmode=require"),
        ("url", "redis://:{p}@cache.internal:6379/0"),
        ("git-stderr", "remote: HTTP Basic: Access denied for https://deploy:{p}@gitlab.example.com/grp/app.git"),
        ("git-stderr", "error: RPC failed; url=https://user:{p}@git.example.com/r.git result=22, HTTP code = 401"),
        ("credential-fill", "protocol=https\nhost=github.com\nusername=alice\npassword={p}\n"),
        ("odbc", "Driver={{ODBC Driver 18}};Server=db;Uid=sa;Pwd={p};"),
        ("query", "POST /login?user=alice&password={p}"),
        ("header", "Cookie: session={p}; theme=dark"),
        ("header", "Set-Cookie: sid={p}; Path=/; HttpOnly"),
        ("header", "X-Api-Key: {p}"),
        ("header", "Private-Token: {p}"),
        ("java-props", "spring.datasource.password={p}"),
        ("tf", 'admin_password = "{p}"'),
    ]
    for context, template in pw_templates:
        for _ in range(2):
            p = password(rng)
            cases.append(Case("password", context, template.format(p=p), (p,)))

    # Basic / Bearer authorization values.
    for _ in range(5):
        p = password(rng)
        b = base64.b64encode(f"user{rng.randint(1, 99)}:{p}".encode()).decode()
        text = rng.choice(
            [
                f"Authorization: Basic {b}",
                f'git -c http.extraHeader="Authorization: Basic {b}" fetch origin',
                f"authorization: basic {b}",
                f'{{"Authorization":"Basic {b}"}}',
            ]
        )
        cases.append(Case("authorization-basic", "header", text, (b,)))
    for _ in range(6):
        t = _mixed(rng, B64URL, rng.randint(24, 64))
        text = rng.choice([f"Authorization: Bearer {t}", f"proxy-authorization: bearer {t}", f"curl -H 'Authorization: Bearer {t}' https://x"])
        cases.append(Case("authorization-bearer", "header", text, (t,)))

    # Private keys, over several lines, in several wrappers.
    for kind in ["rsa", "pkcs8", "ec", "openssh", "encrypted", "dsa", "pgp"]:
        for wrap in ["plain", "json", "stderr", "truncated"]:
            pem, lines = _pem(rng, kind)
            if wrap == "json":
                text = json.dumps({"private_key_id": "abc", "key": pem})
            elif wrap == "stderr":
                text = "error: could not load key:\n" + pem + "\nfatal: Could not read from remote repository."
            elif wrap == "truncated":
                text = pem.rsplit("\n", 2)[0]  # cut before the END line
                lines = lines[:-1]
            else:
                text = pem
            cases.append(Case("private-key", wrap, text, tuple(lines)))
    for _ in range(4):  # first line of a key logged on its own
        _, lines = _pem(rng, rng.choice(["rsa", "pkcs8", "ec", "openssh"]))
        cases.append(Case("private-key-material", "line", "key line: " + lines[0], (lines[0],)))

    # Card numbers (Luhn-valid), formatted several ways, and as integers in text.
    for prefix, length in [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16), ("4", 19), ("35", 16), ("36", 14)]:
        n = _luhn_complete(prefix, length, rng)
        grouped = " ".join(n[i : i + 4] for i in range(0, len(n), 4))
        for text, secret in [
            (f"payment card {n} declined", n),
            (f"card: {grouped}", grouped),
            (f'{{"pan":"{n.replace("", "")}"}}', n),
        ]:
            cases.append(Case("credit-card", "text", text, (secret,)))

    # Several secrets in one value: all of them must go, not just the first or last.
    for _ in range(6):
        a, b, c = TOKENS["github-token"](rng), TOKENS["slack-token"](rng), password(rng)
        text = f"GH={a} SLACK={b} DB_PASSWORD={c} again GH={a}"
        cases.append(Case("multi", "env", text, (a, b, c)))
    return cases


GENERATED_BENIGN_KINDS = ("sha1", "sha256", "uuid4", "uuid7", "trace", "span", "nonluhn", "timestamp", "path", "branch")


def _non_luhn(rng: random.Random) -> str:
    while True:
        n = rng.choice("23456") + _s(rng, string.digits, 15)
        total = sum((int(ch) * (2 if i % 2 else 1)) - (9 if int(ch) * (2 if i % 2 else 1) > 9 else 0) for i, ch in enumerate(reversed(n)))
        if total % 10:
            return n


def benign_lines(seed: int = SEED) -> list[str]:
    """Lines that must come out unchanged: the committed benign.txt plus generated look-alikes."""
    rng = random.Random(seed + 1)
    lines = [ln for ln in (HERE / "benign.txt").read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    for _ in range(12):
        sha1, sha256 = _s(rng, HEX, 40), _s(rng, HEX, 64)
        lines += [
            f"HEAD is now at {sha1[:7]} Merge pull request #{rng.randint(1, 9999)} from acme/feature/token-refresh",
            f"git.ref.update refs/heads/main {sha1} -> {_s(rng, HEX, 40)}",
            f"object-format=sha256 commit {sha256}",
            f"request {uuid.UUID(int=rng.getrandbits(128), version=4)} trace_id={_s(rng, HEX, 32)} span_id={_s(rng, HEX, 16)}",
            f"log.record.uid=0193{_s(rng, HEX, 4)}-{_s(rng, HEX, 4)}-7{_s(rng, HEX, 3)}-8{_s(rng, HEX, 3)}-{_s(rng, HEX, 12)}",
            f"order id {_non_luhn(rng)} shipped",
            f"Timestamp {1732900000000000000 + rng.randint(0, 10**15)} observed",
            f"checking out /home/dev{rng.randint(1, 50)}/src/acme/widgets/.git/worktrees/token-refresh",
        ]
    return lines


def main(outdir: str | None = None) -> None:
    """Write secrets.jsonl and benign.txt (generated view) into ``outdir`` for inspection."""
    out = Path(outdir or ".")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "secrets.jsonl", "w", encoding="utf-8") as fh:
        for c in secret_cases():
            fh.write(json.dumps({"family": c.family, "context": c.context, "text": c.text, "secrets": list(c.secrets)}) + "\n")
    (out / "benign.generated.txt").write_text("\n".join(benign_lines()) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
