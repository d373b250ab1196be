"""The OpenTelemetry distro that makes ``opentelemetry-instrument`` audit with no code change.

Usage::

    GITAUDIT_ENDPOINT=http://127.0.0.1:4318 OTEL_SERVICE_NAME=merge-worker \\
        opentelemetry-instrument python app.py

``opentelemetry-instrument`` loads the ``opentelemetry_distro`` entry point
``gitaudit`` (this class) and then every ``opentelemetry_instrumentor`` entry
point whose library is installed (``gitpython``, ``anthropic``). The distro
calls :func:`gitaudit.instrumentation.configure` (sanitizer first, then the
OTLP/HTTP exporter, or the durable spool when ``GITAUDIT_SPOOL_DIR`` is set)
and installs the provider globally, so the instrumentors' events are exported.
All settings come from the environment, as documented in ``configure``. Select
another distro with ``OTEL_PYTHON_DISTRO``.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro

_log = logging.getLogger(__name__)


class GitauditDistro(BaseDistro):
    """``opentelemetry_distro`` entry point ``gitaudit``: configure gitaudit's audit pipeline."""

    def _configure(self, **kwargs: Any) -> None:
        from .configuration import configure

        try:
            configure(set_global=True)
        except Exception as exc:  # noqa: BLE001 - never break the application's start
            _log.error("gitaudit could not configure auditing: %s", exc)
