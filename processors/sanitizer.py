"""Placeholder until the rule-based sanitizer lands (being written now)."""
from opentelemetry.sdk._logs import LogRecordProcessor


class Sanitizer:  # pragma: no cover - placeholder
    pass


class SanitizingLogRecordProcessor(LogRecordProcessor):  # pragma: no cover - placeholder
    def on_emit(self, log_record):
        return None

    def shutdown(self):
        return None

    def force_flush(self, timeout_millis=30000):
        return True
