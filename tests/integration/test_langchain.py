"""LangChain 1.x / LangGraph adapters: middleware in create_agent, EngramStore, EngramRetriever.

Sync framework calls go through a ``SyncBridge`` (one background loop, module
scoped); async calls either await the session-loop ``engram`` fixture directly or
hop onto the bridge's loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("langchain")
pytest.importorskip("langgraph")

from engram_langchain import EngramMemoryMiddleware, EngramRetriever, EngramStore
from engram_langchain.store import slot_for
from langchain.agents import create_agent
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_tests.integration_tests import RetrieversIntegrationTests
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import GetOp, Item, ListNamespacesOp, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore
from pydantic import Field

from engram import InvalidInputError
from engram.sync import LoopReentryError, SyncBridge

AGENT = "lc-agent"


@pytest.fixture(scope="module")
def bridge(database_url: str) -> Iterator[SyncBridge]:
    with SyncBridge.start(database_url, memory_policy="default", embedder="hashing") as b:
        yield b


def new_user() -> str:
    return f"lc-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- middleware


class RecordingChatModel(GenericFakeChatModel):
    """The fake chat model, remembering the messages of every call."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def fake_model(*answers: str) -> RecordingChatModel:
    return RecordingChatModel(messages=iter([AIMessage(content=a) for a in answers]))


@dataclass
class Context:
    user_id: str
    agent_id: str = AGENT


def system_text(messages: list[BaseMessage]) -> str:
    return "\n".join(m.text for m in messages if isinstance(m, SystemMessage))


def test_middleware_sync_agent_sees_memory_and_records_turn(bridge: SyncBridge) -> None:
    user = new_user()
    bridge.run(bridge.client.add("The user's favourite colour is teal.", user_id=user, agent_id=AGENT))
    model = fake_model("Teal, as you told me.")
    agent = create_agent(
        model,
        system_prompt="You are a helpful assistant.",
        middleware=[EngramMemoryMiddleware(bridge)],
        context_schema=Context,
        checkpointer=InMemorySaver(),
    )
    thread = f"thread-{uuid.uuid4().hex[:8]}"
    out = agent.invoke(
        {"messages": [HumanMessage("What is my favourite colour?")]},
        config={"configurable": {"thread_id": thread}},
        context=Context(user_id=user),
    )
    assert out["messages"][-1].text == "Teal, as you told me."
    # The model saw the recalled fact inside the system message, after the app's prompt.
    (call,) = model.seen
    system = system_text(call)
    assert system.startswith("You are a helpful assistant.")
    assert "favourite colour is teal" in system
    # The recall block is not written into the thread's messages.
    assert not any("teal" in m.text for m in out["messages"] if isinstance(m, SystemMessage))
    # The exchange is in the ledger under the thread's task, queued for the workers.
    events = bridge.run(bridge.client.get_task_events(thread, user_id=user, agent_id=AGENT))
    assert [(e.role, e.content) for e in events] == [
        ("user", "What is my favourite colour?"),
        ("assistant", "Teal, as you told me."),
    ]
    assert events[0].metadata["thread_id"] == thread
    jobs = bridge.run(bridge.client.list_jobs(user_id=user, agent_id=AGENT))
    assert any(j.kind == "derive" and j.task_id == thread for j in jobs)


async def test_middleware_async_agent_with_plain_client(engram: Any) -> None:
    """``ainvoke`` on the client's own loop needs no bridge: the hooks await directly."""
    user = new_user()
    await engram.add("The user is allergic to peanuts.", user_id=user, agent_id=AGENT)
    model = fake_model("Noted: no peanuts.", "Still no peanuts.")
    agent = create_agent(
        model,
        middleware=[EngramMemoryMiddleware(engram, agent_id=AGENT)],
        context_schema=Context,
        checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": f"athread-{uuid.uuid4().hex[:8]}"}}
    thread = config["configurable"]["thread_id"]
    await agent.ainvoke(
        {"messages": [HumanMessage("Suggest a snack, mind my allergies")]},
        config=config,
        context={"user_id": user, "agent_id": AGENT},
    )
    assert "allergic to peanuts" in system_text(model.seen[0])
    # Second turn on the same thread: recorded once more, the first turn not again.
    await agent.ainvoke(
        {"messages": [HumanMessage("And for dinner?")]},
        config=config,
        context={"user_id": user, "agent_id": AGENT},
    )
    events = await engram.get_task_events(thread, user_id=user, agent_id=AGENT)
    assert [e.content for e in events] == [
        "Suggest a snack, mind my allergies",
        "Noted: no peanuts.",
        "And for dinner?",
        "Still no peanuts.",
    ]
    # The second call's recall sees this task's ledger too.
    assert "Suggest a snack" in system_text(model.seen[1])


def test_middleware_scope_from_constructor_and_cross_thread_memory(bridge: SyncBridge) -> None:
    user = new_user()
    middleware = EngramMemoryMiddleware(bridge, user_id=user, agent_id=AGENT, task_prefix="lc:")
    model = fake_model("Nice to meet you, Ada.", "You are Ada.")
    agent = create_agent(model, middleware=[middleware], checkpointer=InMemorySaver())
    agent.invoke(
        {"messages": [HumanMessage("Hello, my name is Ada Lovelace and I write programs.")]},
        config={"configurable": {"thread_id": "t1-" + user}},
    )
    # A new thread: what was said in the first one comes back from Engram, not the checkpointer.
    agent.invoke(
        {"messages": [HumanMessage("Who am I? Do you remember my name, Ada?")]},
        config={"configurable": {"thread_id": "t2-" + user}},
    )
    assert "Ada Lovelace" in system_text(model.seen[1])
    tasks = bridge.run(bridge.client.list_tasks(user_id=user, agent_id=AGENT))
    assert {t.task_id for t in tasks} == {f"lc:t1-{user}", f"lc:t2-{user}"}


def test_middleware_same_thread_id_for_two_users_does_not_collide(bridge: SyncBridge) -> None:
    """LangGraph thread ids are the application's (often "1" or a per-app counter), so two
    users can run threads of the same id: each gets a task of their own in Engram, and
    neither's recall or ledger holds the other's exchange."""
    thread = f"thread-{uuid.uuid4().hex[:8]}"  # one id, used by both users
    said = {
        new_user(): "Remember that my locker code is kept in the green notebook.",
        new_user(): "Remember that my bike is parked behind the library.",
    }
    seen: dict[str, str] = {}
    for user, message in said.items():
        model = fake_model("Noted.")
        agent = create_agent(
            model,
            middleware=[EngramMemoryMiddleware(bridge)],
            context_schema=Context,
            checkpointer=InMemorySaver(),
        )
        agent.invoke(
            {"messages": [HumanMessage(message)]},
            config={"configurable": {"thread_id": thread}},
            context=Context(user_id=user),
        )
        seen[user] = system_text(model.seen[0])
    (first, second) = said
    for user, message in said.items():
        events = bridge.run(bridge.client.get_task_events(thread, user_id=user, agent_id=AGENT))
        assert [(e.user_id, e.role, e.content) for e in events] == [
            (user, "user", message),
            (user, "assistant", "Noted."),
        ]
        (task,) = bridge.run(bridge.client.list_tasks(user_id=user, agent_id=AGENT))
        assert (task.task_id, task.turn_count) == (thread, 1)
    # The second user's recall for the thread saw nothing of the first user's turn.
    assert "green notebook" not in seen[second] and first not in seen[second]


def test_middleware_without_scope_is_refused(bridge: SyncBridge) -> None:
    agent = create_agent(fake_model("hi"), middleware=[EngramMemoryMiddleware(bridge)])
    with pytest.raises(InvalidInputError, match="user_id and agent_id"):
        agent.invoke({"messages": [HumanMessage("hi")]})


async def test_middleware_sync_invoke_on_the_client_loop_raises(engram: Any) -> None:
    """A sync agent run inside the loop that owns the client would deadlock: refused clearly."""
    agent = create_agent(
        fake_model("x"), middleware=[EngramMemoryMiddleware(engram, user_id=new_user(), agent_id=AGENT)]
    )
    with pytest.raises(LoopReentryError):
        agent.invoke({"messages": [HumanMessage("hello there")]})


# --------------------------------------------------------------------------- store


def _norm(result: Any) -> Any:
    """Comparable form of a store result: (namespace, key, value); scores and times dropped."""
    if isinstance(result, Item):
        return (result.namespace, result.key, result.value)
    if isinstance(result, list):
        return [_norm(r) for r in result]
    return result


def store_script(user: str) -> list[tuple[str, Any, bool]]:
    """(label, op or op list, ordered?) -- one batch per step, run against both stores."""
    mem = (user, "memories")
    prefs = (user, "prefs")
    return [
        ("put k1", PutOp(mem, "k1", {"text": "I like pizza with olives", "kind": "food", "age": 1}), True),
        (
            "put k2",
            PutOp(mem, "k2", {"text": "I live in Lisbon near the river", "kind": "place", "age": 2}),
            True,
        ),
        ("put k3", PutOp(mem, "k3", {"text": "My dog is called Rex", "kind": "pet", "age": 4}), True),
        ("put theme", PutOp(prefs, "theme", {"mode": "dark", "size": {"w": 3}}), True),
        ("put font", PutOp((*prefs, "ui"), "font", {"size": 14}), True),
        ("get k1", GetOp(mem, "k1"), True),
        ("get missing key", GetOp(mem, "nope"), True),
        ("search all in ns", SearchOp(mem), True),
        ("search filter eq", SearchOp(mem, {"kind": "place"}), True),
        # (every item has "age": InMemoryStore raises on a missing field under $gte)
        ("search filter op", SearchOp(mem, {"age": {"$gte": 2}}), True),
        ("search filter ne", SearchOp(mem, {"kind": {"$ne": "food"}}), True),
        ("search nested filter", SearchOp(prefs, {"size": {"w": 3}}), True),
        ("search limit offset", SearchOp(mem, None, 2, 1), True),
        ("search user prefix", SearchOp((user,), None, 10, 0), False),
        ("search query", SearchOp(mem, None, 10, 0, "where do I live?"), False),
        ("search query + filter", SearchOp(mem, {"kind": "pet"}, 10, 0, "dog"), False),
        ("update k1", PutOp(mem, "k1", {"text": "I now prefer sushi", "kind": "food", "age": 1}), True),
        ("get updated k1", GetOp(mem, "k1"), True),
        (
            "same text, new value",
            PutOp(mem, "k3", {"text": "My dog is called Rex", "kind": "pet", "age": 5}),
            True,
        ),
        ("get k3", GetOp(mem, "k3"), True),
        ("delete k2", PutOp(mem, "k2", None), True),
        ("get deleted k2", GetOp(mem, "k2"), True),
        ("delete missing", PutOp(mem, "never", None), True),
        ("search after delete", SearchOp(mem), True),
        ("list ns", ListNamespacesOp(((_prefix(user),)), None, 100, 0), True),
        ("list ns depth", ListNamespacesOp((_prefix(user),), 2, 100, 0), True),
        ("list ns suffix", ListNamespacesOp((_prefix(user), _suffix("ui")), None, 100, 0), True),
        ("list ns wildcard", ListNamespacesOp((_prefix(user, "*", "ui"),), None, 100, 0), True),
        ("list ns page", ListNamespacesOp((_prefix(user),), None, 1, 1), True),
        (
            "batch: reads see the state before the batch's writes",
            [PutOp(mem, "k4", {"text": "new"}), GetOp(mem, "k4"), PutOp(mem, "k4", {"text": "newer"})],
            True,
        ),
        ("get k4", GetOp(mem, "k4"), True),
    ]


def _prefix(*path: str) -> Any:
    from langgraph.store.base import MatchCondition

    return MatchCondition(match_type="prefix", path=tuple(path))


def _suffix(*path: str) -> Any:
    from langgraph.store.base import MatchCondition

    return MatchCondition(match_type="suffix", path=tuple(path))


def _compare(label: str, ours: Any, reference: Any, ordered: bool) -> None:
    a, b = _norm(ours), _norm(reference)
    if not ordered:
        a, b = sorted(a, key=repr), sorted(b, key=repr)
    assert a == b, f"{label}: EngramStore {a!r} != InMemoryStore {b!r}"


def test_store_matches_in_memory_store(bridge: SyncBridge) -> None:
    user = new_user()
    ours, reference = EngramStore(bridge, agent_id=AGENT), InMemoryStore()
    for label, op, ordered in store_script(user):
        ops = op if isinstance(op, list) else [op]
        got, want = ours.batch(ops), reference.batch(ops)
        assert len(got) == len(want) == len(ops)
        for g, w in zip(got, want, strict=True):
            _compare(label, g, w, ordered)
        if label == "search query":
            # Engram retrieval ranks the Lisbon item first and gives it a score.
            assert got[0][0].key == "k2" and got[0][0].score is not None


async def test_store_async_matches_in_memory_store(bridge: SyncBridge) -> None:
    """``abatch`` from the test's loop, handed to the bridge's loop."""
    user = new_user()
    ours, reference = EngramStore(bridge, agent_id=AGENT), InMemoryStore()
    for label, op, ordered in store_script(user):
        ops = op if isinstance(op, list) else [op]
        got, want = await ours.abatch(ops), await reference.abatch(ops)
        for g, w in zip(got, want, strict=True):
            _compare(label, g, w, ordered)


async def test_store_helpers_and_engram_mapping(engram: Any) -> None:
    user = new_user()
    store = EngramStore(engram, agent_id=AGENT)
    ns = (user, "memories")
    await store.aput(ns, "colour", {"text": "Favourite colour: teal"})
    first = await store.aget(ns, "colour")
    assert first is not None and first.value == {"text": "Favourite colour: teal"}
    await store.aput(ns, "colour", {"text": "Favourite colour: amber"})
    second = await store.aget(ns, "colour")
    assert second is not None and second.value == {"text": "Favourite colour: amber"}
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    # Each item is a fact in the (user_id=namespace[0], agent_id) scope; a put supersedes.
    facts = await engram.list_facts(user_id=user, agent_id=AGENT, status=None, slot=slot_for(ns, "colour"))
    assert [(f.status, f.content) for f in facts] == [
        ("active", "Favourite colour: amber"),
        ("superseded", "Favourite colour: teal"),
    ]
    assert facts[0].metadata["langgraph_store"]["key"] == "colour"
    await store.adelete(ns, "colour")
    assert await store.aget(ns, "colour") is None
    facts = await engram.list_facts(user_id=user, agent_id=AGENT, status=None, slot=slot_for(ns, "colour"))
    assert facts[0].status == "retracted"
    # Store facts are ordinary memory: recall finds them.
    await store.aput(ns, "city", {"text": "The user lives in Porto"})
    recalled = await engram.recall("Where does the user live?", user_id=user, agent_id=AGENT)
    assert "Porto" in recalled.context
    # Other users' namespaces are other scopes.
    assert await store.asearch((new_user(), "memories")) == []
    with pytest.raises(InvalidInputError, match="namespace"):
        await store.asearch(())
    with pytest.raises(InvalidInputError, match="namespace"):
        await store.alist_namespaces()
    # Keys are exact: similar keys are different items.
    await store.aput(ns, "city ", {"text": "trailing space"})
    city = await store.aget(ns, "city")
    assert city is not None and city.value == {"text": "The user lives in Porto"}


def test_store_fixed_user_scope_and_agent_tool(bridge: SyncBridge) -> None:
    """With ``user_id`` fixed, whole namespaces live in one scope (and cross-namespace ops work)."""
    user = new_user()
    store = EngramStore(bridge, agent_id=AGENT, user_id=user)
    store.put(("memories", "a"), "1", {"text": "alpha"})
    store.put(("memories", "b"), "2", {"text": "beta"})
    assert store.list_namespaces() == [("memories", "a"), ("memories", "b")]
    assert [i.key for i in store.search(())] == ["1", "2"]
    facts = bridge.run(bridge.client.list_facts(user_id=user, agent_id=AGENT))
    assert {f.content for f in facts} == {"alpha", "beta"}


def test_store_in_create_agent_runtime(bridge: SyncBridge) -> None:
    """The store reaches middleware as ``runtime.store`` (where langmem-style tools use it)."""
    from langchain.agents.middleware import before_agent

    user = new_user()
    store = EngramStore(bridge, agent_id=AGENT)

    @before_agent
    def remember(state: Any, runtime: Any) -> None:
        runtime.store.put((runtime.context.user_id, "notes"), "last", {"text": state["messages"][-1].text})

    agent = create_agent(fake_model("ok"), middleware=[remember], context_schema=Context, store=store)
    agent.invoke({"messages": [HumanMessage("remember the milk")]}, context=Context(user_id=user))
    item = store.get((user, "notes"), "last")
    assert item is not None and item.value == {"text": "remember the milk"}


async def test_store_sync_call_on_owning_loop_raises(engram: Any) -> None:
    store = EngramStore(engram, agent_id=AGENT)
    with pytest.raises(LoopReentryError):
        store.get((new_user(), "x"), "k")
    # From a worker thread the same sync call is handed to the (now free) loop.
    assert await asyncio.to_thread(store.get, (new_user(), "x"), "k") is None


# --------------------------------------------------------------------------- retriever

RETRIEVER_FACTS = [
    "Engram keeps agent memory in PostgreSQL tables.",
    "The memory ledger in PostgreSQL is append-only.",
    "PostgreSQL full-text search ranks memory facts by keywords.",
    "Vector search over memory uses pgvector inside PostgreSQL.",
    "Memory workers distil the ledger into PostgreSQL facts.",
    "The user enjoys hiking in the Alps.",
]


class TestEngramRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's standard retriever suite, unmodified."""

    standard: dict[str, Any] = {}

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _standard_data(cls, bridge: SyncBridge) -> None:
        user = new_user()
        for text in RETRIEVER_FACTS:
            bridge.run(bridge.client.add(text, user_id=user, agent_id=AGENT))
        cls.standard = {"engram": bridge, "user_id": user, "agent_id": AGENT}

    @property
    def retriever_constructor(self) -> type[EngramRetriever]:
        return EngramRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {**self.standard, "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return "How does Engram use PostgreSQL for memory?"


def test_retriever_documents_and_k(bridge: SyncBridge) -> None:
    user = new_user()
    for text in RETRIEVER_FACTS:
        bridge.run(bridge.client.add(text, user_id=user, agent_id=AGENT))
    retriever = EngramRetriever(engram=bridge, user_id=user, agent_id=AGENT, k=2)
    docs = retriever.invoke("hiking in the mountains")
    assert len(docs) == 2 and all(isinstance(d, Document) for d in docs)
    assert docs[0].page_content == "The user enjoys hiking in the Alps."
    assert docs[0].metadata["source"] == "fact" and docs[0].metadata["ids"]["fact_id"] > 0
    assert docs[0].metadata["score"] >= docs[1].metadata["score"]
    assert len(retriever.invoke("PostgreSQL memory", k=5)) == 5
    # Another scope sees nothing.
    assert EngramRetriever(engram=bridge, user_id=new_user(), agent_id=AGENT).invoke("hiking") == []


async def test_retriever_async_path_on_client_loop(engram: Any) -> None:
    user = new_user()
    for text in RETRIEVER_FACTS:
        await engram.add(text, user_id=user, agent_id=AGENT)
    retriever = EngramRetriever(engram=engram, user_id=user, agent_id=AGENT)
    docs = await retriever.ainvoke("hiking in the Alps", k=1)
    assert [d.page_content for d in docs] == ["The user enjoys hiking in the Alps."]
    docs = await retriever.ainvoke("PostgreSQL", k=3)
    assert len(docs) == 3
    with pytest.raises(LoopReentryError):
        retriever.invoke("PostgreSQL")


# --------------------------------------------------------------------------- docs


def test_docs_examples_run(database_url: str, tmp_path: Any) -> None:
    """The fenced python blocks of docs/adapters/langchain.md, run in order as one script."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    page = Path(__file__).parents[2] / "docs" / "adapters" / "langchain.md"
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
