"""LlamaIndex 0.14 adapters: retriever, memory block inside ``Memory``, write-through memory.

No LLM runs here: the agent loop is simulated the way ``BaseWorkflowAgent`` drives
memory (``aset``/``aput`` the input, ``aget`` for the prompt, ``aput_messages`` the
scratchpad, ``aput`` the answer).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("llama_index.core")

from engram_llamaindex import (
    EngramMemoryBlock,
    EngramRetriever,
    EngramWriteThroughMemory,
)
from llama_index.core.llms import ChatMessage
from llama_index.core.memory import Memory
from llama_index.core.schema import NodeWithScore, QueryBundle

from engram.sync import LoopReentryError, SyncBridge

AGENT = "li-agent"
FACTS = [
    "The user's favourite drink is matcha.",
    "The user works as a marine biologist.",
    "The user keeps two cats named Miso and Tofu.",
    "The user is learning Portuguese.",
]


def words(text: str) -> list[str]:
    """An offline tokenizer for ``Memory`` (token counts only steer flushing)."""
    return text.split()


@pytest.fixture(scope="module")
def bridge(database_url: str) -> Iterator[SyncBridge]:
    with SyncBridge.start(database_url, memory_policy="default", embedder="hashing") as b:
        yield b


def new_user() -> str:
    return f"li-{uuid.uuid4().hex[:12]}"


def session() -> str:
    return f"sess-{uuid.uuid4().hex[:10]}"


def seed(bridge: SyncBridge, user: str) -> None:
    for text in FACTS:
        bridge.run(bridge.client.add(text, user_id=user, agent_id=AGENT))


def system_text(messages: list[ChatMessage]) -> str:
    return "\n".join(m.content or "" for m in messages if m.role == "system")


# --------------------------------------------------------------------------- retriever


def test_retriever_sync_and_async(bridge: SyncBridge) -> None:
    user = new_user()
    seed(bridge, user)
    retriever = EngramRetriever(bridge, user_id=user, agent_id=AGENT, similarity_top_k=2)
    nodes = retriever.retrieve("What does the user like to drink?")
    assert len(nodes) == 2 and all(isinstance(n, NodeWithScore) for n in nodes)
    assert nodes[0].node.get_content() == "The user's favourite drink is matcha."
    assert nodes[0].score is not None and nodes[0].score >= (nodes[1].score or 0)
    assert nodes[0].node.metadata["source"] == "fact"


async def test_retriever_aretrieve_is_really_async(bridge: SyncBridge, engram: Any) -> None:
    user = new_user()
    for text in FACTS:
        await engram.add(text, user_id=user, agent_id=AGENT)

    class NoSync(EngramRetriever):
        def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
            raise AssertionError("aretrieve must not fall back to the sync path")

    # The plain client on its own loop, and the bridge reached from this (other) loop.
    for source in (engram, bridge):
        retriever = NoSync(source, user_id=user, agent_id=AGENT, similarity_top_k=1)
        nodes = await retriever.aretrieve("Which pets does the user keep?")
        assert [n.node.get_content() for n in nodes] == ["The user keeps two cats named Miso and Tofu."]
    with pytest.raises(LoopReentryError):
        EngramRetriever(engram, user_id=user, agent_id=AGENT).retrieve("cats")


# --------------------------------------------------------------------------- block inside Memory


class SpyBlock(EngramMemoryBlock):
    """Records the keyword arguments ``Memory`` passes to the block."""

    calls: list[dict[str, Any]] = []

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        self.calls.append(dict(block_kwargs))
        return await super()._aget(messages, **block_kwargs)


async def test_memory_block_renders_recall_into_system_message(engram: Any) -> None:
    user, sid = new_user(), session()
    for text in FACTS:
        await engram.add(text, user_id=user, agent_id=AGENT)
    block = SpyBlock(engram=engram, user_id=user, agent_id=AGENT, calls=[])
    memory = Memory.from_defaults(session_id=sid, memory_blocks=[block], tokenizer_fn=words)
    await memory.aput(ChatMessage(role="user", content="Recommend a drink for me"))
    messages = await memory.aget()
    assert "favourite drink is matcha" in system_text(messages)
    assert "<engram_memory>" in system_text(messages)
    assert block.calls[-1]["session_id"] == sid
    # ``aget(input=...)`` recalls for the input even before it is stored.
    messages = await memory.aget(input="Tell me about my cats")
    assert "Miso and Tofu" in system_text(messages)


async def test_memory_block_records_flushed_messages(engram: Any) -> None:
    """On its own the block records messages only when ``Memory`` flushes them."""
    user, sid = new_user(), session()
    block = EngramMemoryBlock(engram=engram, user_id=user, agent_id=AGENT)
    memory = Memory.from_defaults(
        session_id=sid, memory_blocks=[block], tokenizer_fn=words, token_limit=40, token_flush_size=10
    )
    for i in range(6):
        await memory.aput(ChatMessage(role="user", content=f"user message number {i} " + "pad " * 5))
        await memory.aput(ChatMessage(role="assistant", content=f"assistant reply number {i} " + "pad " * 5))
    events = await engram.get_task_events(sid, user_id=user, agent_id=AGENT)
    assert events, "flushed messages reach the ledger"
    assert events[0].content.startswith("user message number 0")
    assert len(events) < 12  # the newest ones are still only in the short-term buffer


def test_memory_block_from_sync_memory_get(bridge: SyncBridge) -> None:
    """``Memory.get`` runs the block on a throwaway loop; the block hops to the bridge's loop."""
    user = new_user()
    seed(bridge, user)
    block = EngramMemoryBlock(engram=bridge, user_id=user, agent_id=AGENT)
    memory = Memory.from_defaults(session_id=session(), memory_blocks=[block], tokenizer_fn=words)
    memory.put(ChatMessage(role="user", content="What is my job?"))
    assert "marine biologist" in system_text(memory.get())


# --------------------------------------------------------------------------- write-through memory


async def test_write_through_records_every_message_at_once(engram: Any) -> None:
    user, sid = new_user(), session()
    memory = EngramWriteThroughMemory.from_defaults(
        engram, user_id=user, agent_id=AGENT, session_id=sid, tokenizer_fn=words
    )

    async def ledger() -> list[tuple[str, str]]:
        events = await engram.get_task_events(sid, user_id=user, agent_id=AGENT)
        return [(e.role, e.content) for e in events]

    await memory.aput(ChatMessage(role="user", content="Hi, I am Grace."))
    assert await ledger() == [("user", "Hi, I am Grace.")]
    await memory.aput_messages(
        [
            ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [{"name": "lookup"}]}),
            ChatMessage(role="tool", content="lookup: nothing found"),
            ChatMessage(role="assistant", content="Hello Grace!"),
        ]
    )
    assert [r for r, _ in await ledger()] == ["user", "assistant", "tool", "assistant"]
    assert (await ledger())[1][1].startswith("[tool calls]")
    # aset: only messages the wrapped memory does not hold yet are recorded.
    history = await memory.aget_all()
    await memory.aset([*history, ChatMessage(role="user", content="What did I say my name was?")])
    assert len(await ledger()) == 5 and (await ledger())[-1] == ("user", "What did I say my name was?")
    assert len(await memory.aget_all()) == 5
    # Reads go through the wrapped Memory (with the Engram block).
    messages = await memory.aget(input="What is my name?")
    assert "Grace" in system_text(messages)
    # Workers get the user/assistant events.
    jobs = await engram.list_jobs(user_id=user, agent_id=AGENT)
    assert len([j for j in jobs if j.kind == "derive"]) == 4
    # reset empties the short-term history; the ledger is append-only.
    await memory.areset()
    assert await memory.aget_all() == []
    assert len(await ledger()) == 5


def test_write_through_sync_methods(bridge: SyncBridge) -> None:
    user, sid = new_user(), session()
    memory = EngramWriteThroughMemory.from_defaults(
        bridge, user_id=user, agent_id=AGENT, session_id=sid, task_prefix="li:", tokenizer_fn=words
    )
    memory.put(ChatMessage(role="user", content="My favourite city is Kyoto."))
    memory.put_messages([ChatMessage(role="assistant", content="Kyoto is lovely.")])
    memory.set([*memory.get_all(), ChatMessage(role="user", content="Any tips?")])
    events = bridge.run(bridge.client.get_task_events(f"li:{sid}", user_id=user, agent_id=AGENT))
    assert [e.content for e in events] == ["My favourite city is Kyoto.", "Kyoto is lovely.", "Any tips?"]
    assert len(memory.get_all()) == 3
    memory.reset()
    assert memory.get_all() == []


async def test_write_through_sync_call_on_client_loop_raises(engram: Any) -> None:
    memory = EngramWriteThroughMemory.from_defaults(
        engram, user_id=new_user(), agent_id=AGENT, session_id=session(), tokenizer_fn=words
    )
    with pytest.raises(LoopReentryError):
        memory.put(ChatMessage(role="user", content="hello"))


# --------------------------------------------------------------------------- agent-style loop


def fake_llm(messages: list[ChatMessage]) -> ChatMessage:
    """Stands in for the model: answers from whatever memory reached the prompt."""
    prompt = system_text(messages) + "\n" + "\n".join(m.content or "" for m in messages)
    if "matcha" in prompt.lower():
        return ChatMessage(role="assistant", content="You like matcha.")
    return ChatMessage(role="assistant", content="I don't know yet.")


async def run_turn(memory: EngramWriteThroughMemory, text: str) -> ChatMessage:
    """One agent turn as ``BaseWorkflowAgent``/``FunctionAgent`` drive memory."""
    await memory.aput(ChatMessage(role="user", content=text))
    prompt = await memory.aget()
    scratchpad = [
        ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [{"name": "noop"}]}),
        ChatMessage(role="tool", content="noop: ok"),
    ]
    answer = fake_llm(prompt)
    await memory.aput_messages([*scratchpad, answer])
    return answer


async def test_agent_loop_remembers_across_sessions(bridge: SyncBridge) -> None:
    user = new_user()
    first = EngramWriteThroughMemory.from_defaults(
        bridge, user_id=user, agent_id=AGENT, session_id=session(), tokenizer_fn=words
    )
    assert (await run_turn(first, "What do I like to drink?")).content == "I don't know yet."
    await run_turn(first, "For the record: my favourite drink is matcha tea.")
    # Memory workers distil the recorded turns (derive jobs were queued on write).
    await bridge.arun(bridge.client.process_jobs())
    # A brand-new session (empty short-term memory) still knows, through Engram.
    second = EngramWriteThroughMemory.from_defaults(
        bridge, user_id=user, agent_id=AGENT, session_id=session(), tokenizer_fn=words
    )
    answer = await run_turn(second, "What is my favourite drink?")
    assert answer.content == "You like matcha."
    assert len(await second.aget_all()) == 4  # user, tool call, tool result, answer


# --------------------------------------------------------------------------- docs


def test_docs_examples_run(database_url: str, tmp_path: Any) -> None:
    """The fenced python blocks of docs/adapters/llamaindex.md, run in order as one script."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    page = Path(__file__).parents[2] / "docs" / "adapters" / "llamaindex.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 3
    script = tmp_path / "example.py"
    script.write_text("\n\n".join(blocks))
    env = {**os.environ, "ENGRAM_DATABASE_URL": database_url, "ENGRAM_EMBEDDER": "hashing"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    print(done.stdout)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "True" in done.stdout
