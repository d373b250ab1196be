"""The one error the OTLP ingest decoder raises.

Every problem with a whole request (unsupported content type or encoding,
oversized body, malformed protobuf or JSON, bad gzip, invalid UTF-8, a field
of the wrong type) becomes an :class:`OTLPDecodeError` carrying the HTTP status
the OTLP/HTTP receiver answers with
(https://opentelemetry.io/docs/specs/otlp/#failures-1) and a message that
names the problem, and where it can, the field path. Messages never quote more
than a short, escaped snippet of the input and never contain raw bytes, so
they are safe to return to the client and to log.
"""

from __future__ import annotations

__all__ = ["OTLPDecodeError"]


class OTLPDecodeError(Exception):
    """A request the OTLP/HTTP logs receiver must refuse as a whole.

    Attributes:
        status_code: HTTP status to answer with: 400 (malformed body or wrong
            field type), 413 (body, compressed or decompressed, over the
            limit) or 415 (unsupported ``Content-Type`` or
            ``Content-Encoding``).
        message: human-readable reason naming the problem (and the field path,
            e.g. ``resourceLogs[0].scopeLogs[1].logRecords[3].traceId: ...``).
    """

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(status_code, message)
        self.status_code = status_code
        self.message = message

    def __str__(self) -> str:
        return f"{self.status_code}: {self.message}"
