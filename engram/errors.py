"""The Engram error hierarchy.

Every error Engram raises on purpose is an ``EngramError``; callers can catch the
base class or the specific subclass.  Validation errors are raised *before* any
write, so catching one means nothing was stored.
"""

from __future__ import annotations


class EngramError(Exception):
    """Base class of every error Engram raises deliberately."""


class ConfigurationError(EngramError):
    """Settings, the database or installed plugins do not fit together."""


class InvalidInputError(EngramError, ValueError):
    """An argument was refused before anything was written."""


class ScopeError(EngramError, PermissionError):
    """The call touched data that belongs to another (user_id, agent_id) scope."""


class NotFoundError(EngramError, LookupError):
    """The requested row does not exist in the caller's scope."""


class PluginError(EngramError):
    """A plugin is missing, misbehaving, or needs an extra that is not installed."""


class MigrationError(ConfigurationError):
    """The database schema cannot be brought to the version this code expects."""


class ExtractionError(EngramError):
    """An extractor failed; the job that called it will be retried."""


class RateLimitedError(ExtractionError):
    """A hosted model asked us to slow down.

    ``retry_after`` (seconds) is honoured by the job queue: the job is snoozed
    without spending an attempt.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def missing_extra(package: str, extra: str) -> PluginError:
    """The error a plugin raises when its optional dependency is not installed."""
    return PluginError(f"{package!r} is not installed; install it with: pip install 'engram-pg[{extra}]'")
