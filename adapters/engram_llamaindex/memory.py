"""LlamaIndex memory backed by Engram.

* :class:`EngramMemoryBlock` -- a ``BaseMemoryBlock[str]`` for
  ``llama_index.core.memory.Memory``: recalls for the latest user message and
  returns the context block, which ``Memory`` renders into the system message.
* :class:`EngramWriteThroughMemory` -- a ``BaseMemory`` wrapper around a
  ``Memory`` that records every message to the Engram ledger the moment it is
  put, not only when ``Memory`` flushes its short-term buffer into blocks.

Scope: ``user_id`` and ``agent_id`` are given to the constructor; the Engram
``task_id`` is ``task_prefix + session_id`` (``Memory`` passes its
``session_id`` to blocks, and the write-through memory uses its own).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.memory import BaseMemory, Memory
from llama_index.core.memory.memory import BaseMemoryBlock

from engram import Engram
from engram.sync import SyncBridge

__all__ = ["EngramMemoryBlock", "EngramWriteThroughMemory", "ledger_role", "message_text"]

log = logging.getLogger("engram.llamaindex")

_ROLES = {
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.TOOL: "tool",
    MessageRole.FUNCTION: "tool",
}
#: Roles whose events are queued for memory workers (the others are only kept in the ledger).
_DERIVE_ROLES = frozenset({"user", "assistant"})


def ledger_role(message: ChatMessage) -> str:
    """The Engram ledger role of a LlamaIndex message."""
    return _ROLES.get(MessageRole(message.role), "observation")


def message_text(message: ChatMessage) -> str:
    """The text of a message; for a tool-calling turn with no text, a note of the calls."""
    text = (message.content or "").strip()
    if text:
        return text
    calls = message.additional_kwargs.get("tool_calls")
    if calls:
        try:
            encoded = json.dumps(calls, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            encoded = str(calls)
        return f"[tool calls] {encoded}"
    return ""


def _as_bridge(engram: Engram | SyncBridge) -> SyncBridge:
    return SyncBridge.wrap(engram)


async def record_messages(
    client: Engram,
    messages: Sequence[ChatMessage],
    *,
    task_id: str,
    user_id: str,
    agent_id: str,
    enqueue_processing: bool,
    session_id: str | None,
) -> int:
    """Append messages to the task's ledger in order; empty ones are skipped.  Returns the count."""
    count = 0
    for message in messages:
        text = message_text(message)
        if not text:
            continue
        role = ledger_role(message)
        await client.record_event(
            task_id,
            role=role,
            content=text,
            agent_id=agent_id,
            user_id=user_id,
            metadata={"source": "llamaindex", "session_id": session_id},
            enqueue_processing=enqueue_processing and role in _DERIVE_ROLES,
        )
        count += 1
    return count


def _latest_user_text(messages: Sequence[ChatMessage] | None) -> str:
    for message in reversed(messages or []):
        if message.role == MessageRole.USER:
            text = (message.content or "").strip()
            if text:
                return text
    return ""


class EngramMemoryBlock(BaseMemoryBlock[str]):
    """Long-term memory from Engram, as a ``Memory`` block.

    ``_aget`` recalls for the latest user message (the ``input`` of
    ``Memory.aget(input=...)`` counts) in the task of ``Memory``'s ``session_id``
    and returns the context block.  ``_aput`` receives the messages ``Memory``
    flushes from its short-term buffer and records them (``record_flushed``);
    turn that off when a :class:`EngramWriteThroughMemory` already recorded them.
    """

    name: str = Field(default="engram_memory", description="The block's name in the memory template.")
    description: str | None = Field(default="Long-term memory recalled by Engram.")
    engram: Any = Field(exclude=True, description="An engram.sync.SyncBridge or an Engram client.")
    user_id: str
    agent_id: str
    task_prefix: str = ""
    recall_limit: int | None = None
    memory_policy: Any = Field(default=None, exclude=True)
    record_flushed: bool = True
    enqueue_processing: bool = True

    _bridge: SyncBridge | None = PrivateAttr(default=None)

    @property
    def bridge(self) -> SyncBridge:
        if self._bridge is None:
            self._bridge = _as_bridge(self.engram)
        return self._bridge

    def task_for(self, session_id: str | None) -> str | None:
        return f"{self.task_prefix}{session_id}" if session_id else None

    async def _recall(self, query: str, task_id: str | None) -> str:
        result = await self.bridge.client.recall(
            query,
            agent_id=self.agent_id,
            user_id=self.user_id,
            task_id=task_id,
            limit=self.recall_limit,
            memory_policy=self.memory_policy,
        )
        return result.context

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        """The recalled context for the latest user message ('' when there is none)."""
        query = _latest_user_text(messages)
        if not query:
            return ""
        task_id = self.task_for(block_kwargs.get("session_id"))
        return await self.bridge.arun(self._recall(query, task_id))

    async def _aput(self, messages: list[ChatMessage]) -> None:
        """Record messages flushed from ``Memory``'s short-term buffer (if ``record_flushed``)."""
        if not self.record_flushed or not messages:
            return
        session_id = messages[0].additional_kwargs.get("session_id")
        task_id = self.task_for(session_id)
        if task_id is None:
            log.warning("EngramMemoryBlock got messages without a session_id; not recorded")
            return
        await self.bridge.arun(
            record_messages(
                self.bridge.client,
                messages,
                task_id=task_id,
                user_id=self.user_id,
                agent_id=self.agent_id,
                enqueue_processing=self.enqueue_processing,
                session_id=session_id,
            )
        )


def _fingerprint(message: ChatMessage) -> tuple[str, str]:
    return (str(message.role), message_text(message))


class EngramWriteThroughMemory(BaseMemory):
    """A ``BaseMemory`` that records every message to the Engram ledger at once.

    It wraps ``memory`` (by default a ``Memory`` for ``session_id`` holding an
    :class:`EngramMemoryBlock`, so reads include recalled long-term memory) and
    forwards every call to it; ``put``/``aput``/``put_messages``/``aput_messages``
    first append the messages to the ledger (task ``task_prefix + session_id``),
    and ``set``/``aset`` record the messages the wrapped memory does not hold yet.
    ``reset`` clears the short-term history only: the ledger is append-only.
    """

    memory: BaseMemory = Field(description="The wrapped memory that answers reads.")
    engram: Any = Field(exclude=True, description="An engram.sync.SyncBridge or an Engram client.")
    user_id: str
    agent_id: str
    session_id: str
    task_prefix: str = ""
    enqueue_processing: bool = True

    _bridge: SyncBridge | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "EngramWriteThroughMemory"

    @classmethod
    # BaseMemory.from_defaults takes only **kwargs; this one needs required keyword
    # arguments (engram, user_id, ...), a deliberate narrowing of the signature.
    def from_defaults(  # type: ignore[override]
        cls,
        engram: Engram | SyncBridge,
        *,
        user_id: str,
        agent_id: str,
        session_id: str,
        memory: BaseMemory | None = None,
        task_prefix: str = "",
        enqueue_processing: bool = True,
        recall_limit: int | None = None,
        **memory_kwargs: Any,
    ) -> EngramWriteThroughMemory:
        """Wrap ``memory``, or a new ``Memory`` (``memory_kwargs``) with an Engram block."""
        if memory is None:
            block = EngramMemoryBlock(
                engram=engram,
                user_id=user_id,
                agent_id=agent_id,
                task_prefix=task_prefix,
                recall_limit=recall_limit,
                record_flushed=False,
            )
            memory = Memory.from_defaults(session_id=session_id, memory_blocks=[block], **memory_kwargs)
        return cls(
            memory=memory,
            engram=engram,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            task_prefix=task_prefix,
            enqueue_processing=enqueue_processing,
        )

    @property
    def bridge(self) -> SyncBridge:
        if self._bridge is None:
            self._bridge = _as_bridge(self.engram)
        return self._bridge

    @property
    def task_id(self) -> str:
        return f"{self.task_prefix}{self.session_id}"

    async def _record(self, messages: Sequence[ChatMessage]) -> int:
        return await record_messages(
            self.bridge.client,
            messages,
            task_id=self.task_id,
            user_id=self.user_id,
            agent_id=self.agent_id,
            enqueue_processing=self.enqueue_processing,
            session_id=self.session_id,
        )

    def _new_messages(
        self, messages: Sequence[ChatMessage], held: Sequence[ChatMessage]
    ) -> list[ChatMessage]:
        """``messages`` minus those the wrapped memory already holds (as a multiset)."""
        seen = Counter(_fingerprint(m) for m in held)
        fresh = []
        for message in messages:
            key = _fingerprint(message)
            if seen[key]:
                seen[key] -= 1
            else:
                fresh.append(message)
        return fresh

    # ------------------------------------------------------------------ reads (forwarded)

    def get(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        return self.memory.get(input=input, **kwargs)

    async def aget(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        return await self.memory.aget(input=input, **kwargs)

    def get_all(self) -> list[ChatMessage]:
        return self.memory.get_all()

    async def aget_all(self) -> list[ChatMessage]:
        return await self.memory.aget_all()

    # ------------------------------------------------------------------ writes (recorded first)

    def put(self, message: ChatMessage) -> None:
        self.bridge.run(self._record([message]))
        self.memory.put(message)

    async def aput(self, message: ChatMessage) -> None:
        await self.bridge.arun(self._record([message]))
        await self.memory.aput(message)

    def put_messages(self, messages: list[ChatMessage]) -> None:
        self.bridge.run(self._record(messages))
        self.memory.put_messages(messages)

    async def aput_messages(self, messages: list[ChatMessage]) -> None:
        await self.bridge.arun(self._record(messages))
        await self.memory.aput_messages(messages)

    def set(self, messages: list[ChatMessage]) -> None:
        self.bridge.run(self._record(self._new_messages(messages, self.memory.get_all())))
        self.memory.set(messages)

    async def aset(self, messages: list[ChatMessage]) -> None:
        held = await self.memory.aget_all()
        await self.bridge.arun(self._record(self._new_messages(messages, held)))
        await self.memory.aset(messages)

    def reset(self) -> None:
        """Clear the short-term history (the Engram ledger keeps every recorded message)."""
        self.memory.reset()

    async def areset(self) -> None:
        await self.memory.areset()
