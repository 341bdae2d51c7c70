"""Task checkpoints: a summary of a task so far, written by workers or on demand."""

from .models import Checkpoint

__all__ = ["Checkpoint"]
