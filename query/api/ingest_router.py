"""``POST /v1/logs``: the OTLP/HTTP logs receiver (OTLP spec, "OTLP/HTTP").

Accepts ``application/x-protobuf`` and ``application/json`` bodies, optionally
gzip-compressed, up to ``GITAUDIT_MAX_BODY_BYTES``. Answers in the request's
encoding: 200 with ``partial_success`` when some records were rejected, 4xx with
a ``google.rpc.Status`` naming the problem for a bad request (nothing is stored),
503 with ``Retry-After`` when the store cannot take the write (retryable).
The response is sent only after the records are in the store.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from gitaudit.instrumentation.semconv import AUDIT_ORGANIZATION_ID

from ..ingest.errors import OTLPDecodeError
from ..ingest.otlp_decode import decode_request, encode_response, encode_status_error
from ..store.client import StoreError
from .auth import IngestPrincipalDep
from .deps import IngestDep, SettingsDep

router = APIRouter(tags=["ingest"])


def _format_of(content_type: str | None) -> str:
    return "json" if (content_type or "").split(";")[0].strip().lower() == "application/json" else "protobuf"


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise OTLPDecodeError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OTLPDecodeError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/v1/logs",
    summary="OTLP/HTTP logs receiver",
    responses={200: {"description": "ExportLogsServiceResponse"}, 400: {}, 413: {}, 415: {}, 503: {}},
)
async def export_logs(request: Request, ingest: IngestDep, settings: SettingsDep,
                      principal: IngestPrincipalDep) -> Response:
    """Receive an ``ExportLogsServiceRequest`` and store its records exactly once.

    With auth on, an ingest key may only write records of its own organizations:
    records of any other organization (or of none, for an organization-bound key)
    are rejected and counted in ``partial_success``.
    """
    content_type = request.headers.get("content-type")
    fmt = _format_of(content_type)
    try:
        body = await _read_limited(request, settings.max_body_bytes)
        decoded = await run_in_threadpool(
            decode_request, body, content_type, request.headers.get("content-encoding"),
            max_body_bytes=settings.max_body_bytes, max_decompressed_bytes=settings.max_decompressed_bytes,
        )
    except OTLPDecodeError as exc:
        payload, ctype = encode_status_error(exc.status_code, exc.message, fmt)
        return Response(payload, status_code=exc.status_code, media_type=ctype)
    records = decoded.records
    rejected, messages = decoded.rejected, list(decoded.rejection_messages)
    if principal.organizations is not None:
        allowed = []
        for record in records:
            org = record.attributes.get(AUDIT_ORGANIZATION_ID)
            if isinstance(org, str) and principal.may_write_org(org):
                allowed.append(record)
            else:
                rejected += 1
                if len(messages) < 5:
                    messages.append(f"record of organization {str(org)[:40]!r} is outside this key's organizations")
        records = allowed
    try:
        await run_in_threadpool(ingest.ingest, records)
    except StoreError:
        payload, ctype = encode_status_error(503, "the store is unavailable; retry later", decoded.response_format)
        return Response(payload, status_code=503, media_type=ctype, headers={"Retry-After": "5"})
    message = "; ".join(messages) if rejected else ""
    payload, ctype = encode_response(rejected, message, decoded.response_format)
    return Response(payload, status_code=200, media_type=ctype)
