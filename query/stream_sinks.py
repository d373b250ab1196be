"""Where streaming destinations deliver: a signed HTTPS webhook, or gzip NDJSON objects in S3.

Both are at least once: a batch that fails is retried whole (by the worker in
:mod:`gitaudit.query.stream_destinations`), so a receiver may see a batch twice
and must deduplicate on each event's ``uid`` (the ``log.record.uid``) or on the
batch id.

Webhook (``POST`` to the configured URL), modelled on Stripe's and GitHub's
signed webhooks:

* body: ``{"batch_id": "<32 hex>", "destination_id": "...", "events": [<event>, ...]}``
  (each event is the dict of ``GET /api/v1/events``, in stream order);
* ``X-Gitaudit-Timestamp``: Unix seconds when the request was signed;
* ``X-Gitaudit-Signature``: ``sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``;
  receivers check it with :func:`verify_signature` (constant time) and should
  refuse timestamps older than a few minutes (replays);
* ``X-Gitaudit-Batch-Id`` (same on every retry of the batch) and
  ``X-Gitaudit-Event-Count``.

Any 2xx is success; anything else, a timeout or a connection error is a failure
to retry. Error messages name the status or the exception type only, never the
URL (it may carry a token) or the secret.

S3: one object per batch, ``<prefix>YYYY/MM/DD/HH/<window_start_ns>-<batch_id>.ndjson.gz``
(UTC hour and window of *insertion* time): gzip of one event JSON per line,
metadata ``batch-id`` and ``event-count``. A retried batch writes the same key
(an idempotent overwrite). Credentials come from boto3's usual chain
(environment, profile, instance role), never from the destination's config;
``GITAUDIT_S3_ENDPOINT_URL`` points boto3 at MinIO or any S3-compatible store.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import time
from typing import Any

from gitaudit.instrumentation.version import __version__

from .stream_store import StreamEvent

SIGNATURE_HEADER = "X-Gitaudit-Signature"
TIMESTAMP_HEADER = "X-Gitaudit-Timestamp"
BATCH_ID_HEADER = "X-Gitaudit-Batch-Id"
EVENT_COUNT_HEADER = "X-Gitaudit-Event-Count"


class DeliveryError(RuntimeError):
    """A delivery failed; ``str()`` is safe to show (no URL, no secret)."""


def batch_id(destination_id: str, events: list[StreamEvent]) -> str:
    """Deterministic id of a batch (32 hex): same destination and same events, same id."""
    raw = f"{destination_id}|{events[0].position.cursor()}|{events[-1].position.cursor()}|{len(events)}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Gitaudit-Signature`` value: ``sha256=<hex>`` of HMAC-SHA256(secret, ``timestamp.body``)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *,
                     tolerance_s: float | None = 300.0, now_s: float | None = None) -> bool:
    """Check a webhook request (for receivers): signature matches and timestamp is recent.

    Args:
        secret: the destination's secret.
        timestamp: the ``X-Gitaudit-Timestamp`` header (Unix seconds).
        body: the raw request body (bytes, unparsed).
        signature: the ``X-Gitaudit-Signature`` header.
        tolerance_s: largest accepted age (s); None skips the age check.
        now_s: the current time (default: the clock).
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if tolerance_s is not None and abs((now_s if now_s is not None else time.time()) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def webhook_body(batch: str, destination_id: str, events: list[StreamEvent]) -> bytes:
    """The JSON body of one webhook delivery (events already serialized once)."""
    head = f'{{"batch_id":"{batch}","destination_id":"{destination_id}","events":['
    return (head + ",".join(e.data for e in events) + "]}").encode()


class WebhookSink:
    """POSTs signed batches to one URL.

    Args:
        url: the receiver URL.
        secret: the HMAC key (never logged).
        timeout_s: request timeout (s).
    """

    def __init__(self, url: str, secret: str, timeout_s: float = 10.0) -> None:
        import httpx

        self.url = url
        self._secret = secret
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False,
                                    headers={"User-Agent": f"gitaudit-stream/{__version__}"})

    def deliver(self, destination_id: str, batch: str, events: list[StreamEvent], window_start_ns: int = 0) -> None:
        """Deliver one batch; raises :class:`DeliveryError` unless the receiver answered 2xx."""
        import httpx

        body = webhook_body(batch, destination_id, events)
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: ts,
                   SIGNATURE_HEADER: sign(self._secret, ts, body), BATCH_ID_HEADER: batch,
                   EVENT_COUNT_HEADER: str(len(events))}
        try:
            resp = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook request failed: {type(exc).__name__}") from None
        if not 200 <= resp.status_code < 300:
            raise DeliveryError(f"webhook answered HTTP {resp.status_code}")

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def s3_key(prefix: str, window_start_ns: int, batch: str) -> str:
    """Object key of a batch: ``<prefix>YYYY/MM/DD/HH/<window_start_ns>-<batch>.ndjson.gz``."""
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(window_start_ns // 1_000_000_000))
    return f"{prefix}{hour}/{window_start_ns}-{batch}.ndjson.gz"


def ndjson_gzip(events: list[StreamEvent]) -> bytes:
    """Gzip (mtime 0, so identical batches give identical bytes) of one event JSON per line."""
    text = "".join(e.data + "\n" for e in events)
    return gzip.compress(text.encode(), mtime=0)


class S3Sink:
    """Writes batches as gzip NDJSON objects under ``s3://bucket/prefix``.

    Args:
        bucket: the bucket.
        prefix: key prefix (``''`` or ending in ``/``).
        region: AWS region (None: boto3's default).
        endpoint_url: S3 endpoint (None: AWS).
    """

    def __init__(self, bucket: str, prefix: str, region: str | None = None, endpoint_url: str | None = None) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix
        self._client: Any = boto3.client("s3", region_name=region, endpoint_url=endpoint_url)

    def deliver(self, destination_id: str, batch: str, events: list[StreamEvent], window_start_ns: int = 0) -> None:
        """Write one object; raises :class:`DeliveryError` on any S3 or network error."""
        key = s3_key(self.prefix, window_start_ns, batch)
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=ndjson_gzip(events), ContentType="application/x-ndjson",
                Metadata={"batch-id": batch, "event-count": str(len(events)), "destination-id": destination_id})
        except Exception as exc:  # noqa: BLE001 - botocore raises many types; all are retryable here
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
            raise DeliveryError(f"S3 put failed: {code or type(exc).__name__}") from None

    def close(self) -> None:
        """Nothing to release (boto3 clients need no closing)."""
