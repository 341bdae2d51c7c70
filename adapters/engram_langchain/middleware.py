"""``EngramMemoryMiddleware``: long-term memory for ``langchain.agents.create_agent``.

Before each model call the middleware recalls memory for the latest user message
and appends the context block to the system message (the agent's state is not
changed, so the block never piles up in the thread's messages).  After the agent
finishes, it records the exchange -- the latest user message and the final
answer -- with ``record_turn(..., enqueue_processing=True)``, so memory workers
distil it into facts for later turns.

Scope: ``user_id`` and ``agent_id`` come from the runtime context
(``create_agent(..., context_schema=...)`` and ``invoke(..., context=...)``; a
dataclass, pydantic model or dict with those fields) or, failing that, from the
constructor.  The Engram ``task_id`` is the LangGraph ``thread_id`` (from the
checkpointer's run config), prefixed with ``task_prefix``; a context ``task_id``
or the constructor's ``task_id`` is used when there is no thread.  Engram task ids
belong to their ``(user_id, agent_id)`` scope, so two users whose threads happen to
share an id get two separate tasks; ``task_prefix`` only keeps the threads apart
from other tasks the same scope records outside LangGraph.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, NotRequired

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
    PrivateStateAttr,
)
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from engram import Engram, InvalidInputError
from engram.sync import SyncBridge

__all__ = ["EngramMemoryMiddleware", "EngramMemoryState"]

DEFAULT_HEADER = "Long-term memory (recalled by Engram; use it when relevant):"


class EngramMemoryState(AgentState[Any]):
    """Agent state plus the id of the last user message already recorded (private)."""

    engram_recorded: NotRequired[Annotated[str | None, PrivateStateAttr]]


def _field(context: Any, name: str) -> Any:
    if context is None:
        return None
    if isinstance(context, dict):
        return context.get(name)
    return getattr(context, name, None)


def _thread_id(runtime: Runtime[Any] | None) -> str | None:
    info = getattr(runtime, "execution_info", None)
    if info is not None and info.thread_id:
        return str(info.thread_id)
    try:
        from langgraph.config import get_config

        configurable = get_config().get("configurable") or {}
    except RuntimeError:
        return None
    thread = configurable.get("thread_id")
    return str(thread) if thread else None


def _latest(messages: Sequence[AnyMessage], kind: type[AnyMessage]) -> tuple[int, AnyMessage] | None:
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], kind):
            return index, messages[index]
    return None


def _with_memory(system: SystemMessage | None, block: str) -> SystemMessage:
    if system is None:
        return SystemMessage(content=block)
    if isinstance(system.content, str):
        return SystemMessage(content=f"{system.content}\n\n{block}" if system.content else block)
    return SystemMessage(content=[*system.content, {"type": "text", "text": block}])


class EngramMemoryMiddleware(AgentMiddleware[EngramMemoryState, Any, Any]):
    """Recall into the system message before each model call; record the turn after the agent.

    Args:
        engram: a :class:`engram.sync.SyncBridge` (needed for ``invoke``/``stream``)
            or an ``Engram`` client (enough for ``ainvoke`` on the client's loop).
        user_id, agent_id: the scope when the runtime context does not give one.
        task_id: the Engram task when the run has no ``thread_id``.
        task_prefix: prepended to the thread id to form the Engram task id (the id is
            per scope already; the prefix separates threads from the scope's other tasks).
        recall_limit, memory_policy: passed to ``recall``.
        header: the line put above the recalled context block.
        record: record the exchange after the agent (default ``True``).
        enqueue_processing: queue the recorded turn for memory workers (default ``True``).
    """

    state_schema = EngramMemoryState

    def __init__(
        self,
        engram: Engram | SyncBridge,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        task_id: str | None = None,
        task_prefix: str = "",
        recall_limit: int | None = None,
        memory_policy: Any = None,
        header: str = DEFAULT_HEADER,
        record: bool = True,
        enqueue_processing: bool = True,
    ) -> None:
        super().__init__()
        self._engram = engram
        self._bridge: SyncBridge | None = engram if isinstance(engram, SyncBridge) else None
        self.user_id = user_id
        self.agent_id = agent_id
        self.task_id = task_id
        self.task_prefix = task_prefix
        self.recall_limit = recall_limit
        self.memory_policy = memory_policy
        self.header = header
        self.record = record
        self.enqueue_processing = enqueue_processing
        self.tools = []

    @property
    def bridge(self) -> SyncBridge:
        if self._bridge is None:
            self._bridge = SyncBridge.wrap(self._engram)
        return self._bridge

    # ------------------------------------------------------------------ scope

    def scope(self, runtime: Runtime[Any] | None) -> dict[str, str]:
        """``{"user_id", "agent_id"}`` from the runtime context, else the constructor."""
        context = getattr(runtime, "context", None)
        user_id = _field(context, "user_id") or self.user_id
        agent_id = _field(context, "agent_id") or self.agent_id
        if not user_id or not agent_id:
            raise InvalidInputError(
                "EngramMemoryMiddleware needs user_id and agent_id: pass them in the runtime context "
                "(invoke(..., context={'user_id': ..., 'agent_id': ...})) or to the constructor"
            )
        return {"user_id": str(user_id), "agent_id": str(agent_id)}

    def task_for(self, runtime: Runtime[Any] | None) -> str | None:
        """The Engram task id: ``task_prefix + thread_id``, else the context's or constructor's.

        It needs no user or agent in it: every call pairs it with :meth:`scope`, and
        Engram keeps task ids apart per ``(user_id, agent_id)``.
        """
        thread = _thread_id(runtime)
        if thread:
            return f"{self.task_prefix}{thread}"
        task = _field(getattr(runtime, "context", None), "task_id") or self.task_id
        return str(task) if task else None

    # ------------------------------------------------------------------ recall

    async def _recall_block(self, request: ModelRequest[Any]) -> str | None:
        found = _latest(request.messages, HumanMessage)
        query = found[1].text.strip() if found else ""
        if not query:
            return None
        result = await self.bridge.client.recall(
            query,
            **self.scope(request.runtime),
            task_id=self.task_for(request.runtime),
            limit=self.recall_limit,
            memory_policy=self.memory_policy,
        )
        return f"{self.header}\n{result.context}" if result.context.strip() else None

    def _apply(self, request: ModelRequest[Any], block: str | None) -> ModelRequest[Any]:
        if block is None:
            return request
        return request.override(system_message=_with_memory(request.system_message, block))

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Sync agents (``invoke``/``stream``): recall through the bridge, then call the model."""
        block = self.bridge.run(self._recall_block(request))
        return handler(self._apply(request, block))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async agents (``ainvoke``/``astream``): the same without blocking the loop."""
        block = await self.bridge.arun(self._recall_block(request))
        return await handler(self._apply(request, block))

    # ------------------------------------------------------------------ record

    async def _record_turn(self, state: EngramMemoryState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        if not self.record:
            return None
        messages = state["messages"]
        human = _latest(messages, HumanMessage)
        if human is None:
            return None
        index, message = human
        user_text = message.text.strip()
        marker = message.id or f"index:{index}"
        if not user_text or state.get("engram_recorded") == marker:
            return None
        answers = [m for m in messages[index + 1 :] if isinstance(m, AIMessage) and m.text.strip()]
        answer = answers[-1].text if answers else ""
        scope = self.scope(runtime)
        thread = _thread_id(runtime)
        task_id = self.task_for(runtime)
        if task_id is None:
            raise InvalidInputError(
                "EngramMemoryMiddleware needs a task: run the agent with a checkpointer and a thread_id "
                "(config={'configurable': {'thread_id': ...}}), or pass task_id to the constructor"
            )
        await self.bridge.client.record_turn(
            task_id,
            user_message=user_text,
            assistant_response=answer,
            metadata={"source": "langchain", "thread_id": thread, "message_id": message.id},
            enqueue_processing=self.enqueue_processing,
            **scope,
        )
        return {"engram_recorded": marker}

    def after_agent(self, state: EngramMemoryState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Record the exchange (sync agents)."""
        return self.bridge.run(self._record_turn(state, runtime))

    async def aafter_agent(self, state: EngramMemoryState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Record the exchange (async agents)."""
        return await self.bridge.arun(self._record_turn(state, runtime))
