"""Privacy: ``purge`` and ``redact_event`` (honest deletion), and the redactors' kernel side."""

from .models import PurgeReport, RedactionReport, RedactionResult
from .redaction import redact

__all__ = ["PurgeReport", "RedactionReport", "RedactionResult", "redact"]
