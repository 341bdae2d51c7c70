"""The one base of every public model: frozen, validated pydantic v2."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class EngramModel(BaseModel):
    """Every value Engram returns is an immutable instance of a subclass of this."""

    model_config = ConfigDict(frozen=True)
