"""gitaudit.processors: OTel LogRecordProcessors that transform records before export."""

from .sanitizer import Sanitizer, SanitizingLogRecordProcessor

__all__ = ["Sanitizer", "SanitizingLogRecordProcessor"]
