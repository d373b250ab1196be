"""Settings of the live stream and streaming destinations (pydantic-settings).

Argument > environment > default; every variable has the ``GITAUDIT_`` prefix:

=========================================  =====================================================
``GITAUDIT_STREAM_MODE``                   ``auto`` (default: ``embedded`` for a ``chdb://`` store,
                                           ``tail`` for a ClickHouse server), ``embedded``, ``tail``
``GITAUDIT_STREAM_HEARTBEAT_S``            seconds between SSE heartbeat comments (default 15)
``GITAUDIT_STREAM_QUEUE_EVENTS``           per-subscriber buffer, events (default 1000); overflow
                                           sends ``event: dropped`` and closes the stream
``GITAUDIT_STREAM_MAX_SUBSCRIBERS``        open streams per server (default 1000; beyond: 503)
``GITAUDIT_STREAM_REPLAY_PAGE``            rows per replay query (default 1000)
``GITAUDIT_STREAM_POLL_MS``                store poll period (default 200 ms in tail mode; the
                                           embedded mode is woken by ingest and polls every 1000 ms
                                           only to catch rows written around the ingest service)
``GITAUDIT_STREAM_TAIL_SETTLE_MS``         tail mode: rows are streamed once their insertion time
                                           is this old (default 300 ms), so concurrent inserts that
                                           commit out of order are still streamed in order
``GITAUDIT_STREAM_DESTINATIONS``           run the streaming destination workers (default true; in a
                                           cluster enable it on exactly one API replica)
``GITAUDIT_STREAM_DESTINATION_BATCH``      events per webhook request / S3 object (default 500)
``GITAUDIT_STREAM_DESTINATION_DOWN_AFTER_S``  a destination failing this long is reported down
                                           (default 300 s)
``GITAUDIT_STREAM_RETRY_INITIAL_MS``       first retry delay (default 500 ms), doubled per failure
``GITAUDIT_STREAM_RETRY_MAX_MS``           retry delay cap (default 60000 ms)
``GITAUDIT_STREAM_WEBHOOK_TIMEOUT_S``      webhook request timeout (default 10 s)
``GITAUDIT_STREAM_WEBHOOK_ALLOW_HTTP``     accept ``http://`` webhook URLs (default false; loopback
                                           URLs are always accepted, for local receivers)
``GITAUDIT_S3_ENDPOINT_URL``               S3 endpoint (MinIO, moto, ...); default: AWS
=========================================  =====================================================
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StreamSettings(BaseSettings):
    """Live stream and destination settings; see the module docstring for the variables."""

    model_config = SettingsConfigDict(env_prefix="GITAUDIT_", extra="ignore")

    stream_mode: Literal["auto", "embedded", "tail"] = "auto"
    stream_heartbeat_s: float = Field(default=15.0, gt=0, le=3600)
    stream_queue_events: int = Field(default=1000, ge=1, le=1_000_000)
    stream_max_subscribers: int = Field(default=1000, ge=1)
    stream_replay_page: int = Field(default=1000, ge=1, le=100_000)
    stream_poll_ms: int | None = Field(default=None, ge=10)
    stream_tail_settle_ms: int = Field(default=300, ge=0, le=60_000)
    stream_destinations: bool = True
    stream_destination_batch: int = Field(default=500, ge=1, le=100_000)
    stream_destination_down_after_s: float = Field(default=300.0, ge=0)
    stream_retry_initial_ms: int = Field(default=500, ge=1)
    stream_retry_max_ms: int = Field(default=60_000, ge=1)
    stream_webhook_timeout_s: float = Field(default=10.0, gt=0)
    stream_webhook_allow_http: bool = False
    s3_endpoint_url: str | None = None

    def resolved_mode(self, dsn: str) -> str:
        """``embedded`` or ``tail``: the configured mode, ``auto`` resolved from the store DSN."""
        if self.stream_mode != "auto":
            return self.stream_mode
        return "embedded" if dsn.startswith("chdb://") else "tail"

    def poll_ms(self, mode: str) -> int:
        """Store poll period for ``mode`` (ms)."""
        if self.stream_poll_ms is not None:
            return self.stream_poll_ms
        return 1000 if mode == "embedded" else 200

    def settle_ms(self, mode: str) -> int:
        """Settle delay for ``mode`` (ms): 0 embedded (inserts are serialized), else the setting."""
        return 0 if mode == "embedded" else self.stream_tail_settle_ms
