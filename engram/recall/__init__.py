"""The recall pipeline: routing, strategies, fusion, packing and traces."""

from .context import RecallContext
from .models import RecallItem, RecallResult, RecallTrace, StrategyRun
from .router import DefaultRouter, Router

__all__ = [
    "DefaultRouter",
    "RecallContext",
    "RecallItem",
    "RecallResult",
    "RecallTrace",
    "Router",
    "StrategyRun",
]
