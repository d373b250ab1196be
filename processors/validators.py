"""Checks a candidate secret must pass before the sanitizer masks it.

A rule's regex finds candidates; a validator rejects the look-alikes the regex
cannot rule out in linear time (a 16-digit number that fails the Luhn check,
a 40-character hex git SHA next to the word "aws", the English word after
"Basic"). Validators receive the candidate as UTF-8 ``bytes`` and return
``bool``; they never raise (malformed input is simply "not valid").

In a rules file a rule lists them under ``validate``, each either a bare name
or a one-key mapping ``{name: argument}``::

    validate: [luhn]
    validate: [{entropy: 4.2}]

=================  ========  ===================================================
name               argument  passes when
=================  ========  ===================================================
``luhn``           none      13-19 digits (spaces/dashes ignored), a known card
                             brand prefix (2-6), and the Luhn checksum holds
``entropy``        float     Shannon entropy of the candidate >= argument, in
                             bits per character
``char_classes``   int       it mixes at least that many of: lower-case letters,
                             upper-case letters, digits
``jwt``            none      the first dot-separated segment base64url-decodes
                             to a JSON object with an ``alg`` or ``typ`` member
``basic_auth``     none      it base64-decodes to printable ``user:password``
``base64_bytes``   int       it base64-decodes to exactly that many bytes
``not_path``       none      it does not start like a file path (``/``, ``~``,
                             ``./``, ``../``, ``C:\\``)
``min_length``     int       it is at least that many bytes long
``not_reference``  none      it is not a placeholder or variable reference:
                             ``${X}``, ``$(cmd)``, ``{{ x }}``, ``<x>``,
                             ``%X%``, ``$UPPER_CASE``, ``***`` (evidence kept)
=================  ========  ===================================================
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Callable

Validator = Callable[[bytes], bool]

__all__ = ["VALIDATORS", "Validator", "build_validator", "luhn_valid", "shannon_entropy"]


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (only 0-9) satisfies the Luhn (mod 10) checksum, ISO/IEC 7812-1."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(candidate: bytes) -> bool:
    digits = candidate.replace(b" ", b"").replace(b"-", b"")
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    # Brand prefixes (IIN ranges) of cards in circulation: Mastercard 2221-2720 and 51-55,
    # Amex 34/37, Diners 30/36/38, Discover 6011/64/65, JCB 35, Visa 4, UnionPay 62, Maestro 5/6.
    if digits[:1] not in b"23456":
        return False
    return luhn_valid(digits.decode("ascii"))


def shannon_entropy(data: bytes) -> float:
    """Shannon entropy of ``data`` in bits per byte (0.0 for empty input)."""
    if not data:
        return 0.0
    n = len(data)
    return -sum((c / n) * math.log2(c / n) for c in Counter(data).values())


def _entropy(threshold: float) -> Validator:
    threshold = float(threshold)
    return lambda candidate: shannon_entropy(candidate) >= threshold


def _char_classes(minimum: int) -> Validator:
    minimum = int(minimum)

    def check(candidate: bytes) -> bool:
        classes = 0
        if any(97 <= b <= 122 for b in candidate):
            classes += 1
        if any(65 <= b <= 90 for b in candidate):
            classes += 1
        if any(48 <= b <= 57 for b in candidate):
            classes += 1
        return classes >= minimum

    return check


def _b64decode(data: bytes, urlsafe: bool = False) -> bytes | None:
    data = data.strip().rstrip(b"=")
    data += b"=" * (-len(data) % 4)
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(data)
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _jwt(candidate: bytes) -> bool:
    header = _b64decode(candidate.split(b".", 1)[0], urlsafe=True)
    if header is None:
        return False
    try:
        obj = json.loads(header)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and ("alg" in obj or "typ" in obj)


def _basic_auth(candidate: bytes) -> bool:
    decoded = _b64decode(candidate)
    if not decoded or b":" not in decoded:
        return False
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.isprintable()


def _base64_bytes(size: int) -> Validator:
    size = int(size)

    def check(candidate: bytes) -> bool:
        decoded = _b64decode(candidate)
        return decoded is not None and len(decoded) == size

    return check


def _not_path(candidate: bytes) -> bool:
    return not (
        candidate.startswith((b"/", b"~", b"./", b"../", b"$"))
        or (len(candidate) > 2 and candidate[1:3] in (b":\\", b":/"))
    )


_REFERENCE_RE = re.compile(rb"^(?:\$\{[^}]*\}|\$\([^)]*\)|\{\{.*\}\}|<[^<>]*>|%[A-Za-z_][A-Za-z0-9_]*%|\$[A-Z_][A-Z0-9_]*|\*+)$")


def _not_reference(candidate: bytes) -> bool:
    return _REFERENCE_RE.match(candidate.strip(b"\"'")) is None


def _min_length(n: int) -> Validator:
    n = int(n)
    return lambda candidate: len(candidate) >= n


#: name -> (takes an argument?, factory or validator)
VALIDATORS: dict[str, tuple[bool, Callable]] = {
    "luhn": (False, _card),
    "entropy": (True, _entropy),
    "char_classes": (True, _char_classes),
    "jwt": (False, _jwt),
    "basic_auth": (False, _basic_auth),
    "base64_bytes": (True, _base64_bytes),
    "not_path": (False, _not_path),
    "min_length": (True, _min_length),
    "not_reference": (False, _not_reference),
}


def build_validator(spec: str | dict) -> Validator:
    """Turn one ``validate`` entry (``"luhn"`` or ``{"entropy": 4.2}``) into a callable.

    Raises ``ValueError`` for an unknown name, a missing or unexpected argument.
    """
    if isinstance(spec, str):
        name, arg, has_arg = spec, None, False
    elif isinstance(spec, dict) and len(spec) == 1:
        ((name, arg),) = spec.items()
        has_arg = True
    else:
        raise ValueError(f"validator must be a name or a one-key mapping, got {spec!r}")
    if name not in VALIDATORS:
        raise ValueError(f"unknown validator {name!r} (known: {', '.join(sorted(VALIDATORS))})")
    takes_arg, factory = VALIDATORS[name]
    if takes_arg:
        if not has_arg:
            raise ValueError(f"validator {name!r} needs an argument, e.g. {{{name}: ...}}")
        try:
            return factory(arg)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad argument for validator {name!r}: {arg!r}") from exc
    if has_arg and arg not in (None, True, {}):
        raise ValueError(f"validator {name!r} takes no argument")
    return factory
