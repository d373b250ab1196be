"""Server settings (pydantic-settings): argument > environment > default.

Every setting is an environment variable with the ``GITAUDIT_`` prefix:

==============================  ==========================================================
``GITAUDIT_CLICKHOUSE_DSN``     store: ``chdb://./data/clickhouse`` (embedded, default) or
                                ``http(s)://user:pass@host:8123/db`` (a ClickHouse server)
``GITAUDIT_DATABASE``           database name for the embedded store (default ``gitaudit``;
                                for ``http`` DSNs the path's database wins)
``GITAUDIT_HOST``               bind address of ``gitaudit serve`` (default ``127.0.0.1``)
``GITAUDIT_PORT``               port (default ``4318``, the OTLP/HTTP default)
``GITAUDIT_MAX_BODY_BYTES``     largest accepted OTLP request body (default 16 MiB)
``GITAUDIT_MAX_PAGE_SIZE``      largest ``limit`` of a search page (default 1000)
``GITAUDIT_AUTH``               ``auto`` (default: API keys required unless bound to loopback),
                                ``on`` or ``off``
==============================  ==========================================================
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DSN = "chdb://./data/clickhouse"


class Settings(BaseSettings):
    """gitaudit server settings; see the module docstring for the variables."""

    model_config = SettingsConfigDict(env_prefix="GITAUDIT_", extra="ignore")

    clickhouse_dsn: str = DEFAULT_DSN
    database: str = Field(default="gitaudit", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    host: str = "127.0.0.1"
    port: int = Field(default=4318, ge=0, le=65535)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_decompressed_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_page_size: int = Field(default=1000, ge=1, le=100_000)
    auth: Literal["auto", "on", "off"] = "auto"
