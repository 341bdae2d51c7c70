"""Every hook spec is exercised for real: a plugin object implements it, Engram calls it.

``test_plugins.py::test_every_hook_has_a_test`` only checks that each hook's name
appears in some test file.  Here one plugin object implements *every* hook spec,
is registered on the process-wide plugin manager, and each hook is checked
against the real operation on the real database:

* registration hooks: what the plugin registers is selected by name through
  ``Engram(...)`` (or a policy) and is then actually called by Engram;
* observation hooks: the hook receives the very object the operation returned.

``test_each_hook_spec_is_exercised_here`` keeps this file complete: a new hook
spec fails it until the plugin implements it and a ``test_hook_<name>`` exists.
"""

from __future__ import annotations

import inspect
import re
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import click
import pytest

from engram import CriticalSlot, Engram, MemoryPolicy, hookimpl, plugins
from engram.interfaces import CandidateFact, Detection, RecallCandidate, SourceSpan

PLUGIN_NAME = "exercised-hooks"
EMBEDDER = "exercised-embedder"
EXTRACTOR = "exercised-extractor"
STRATEGY = "exercised_strategy"
REDACTOR = "exercised_redactor"
POLICY = "exercised-policy"
SUMMARY_PREFIX = "exercised summary of"
COMMAND = "exercised-hello"


# --------------------------------------------------------------------------- the plugin's parts


class RecordingEmbedder:
    """Wraps the hashing embedder under its own name, and records every call."""

    name = "exercised/hashing"

    def __init__(self) -> None:
        import engram_hashing

        self._inner = engram_hashing.create_embedder()
        self.dimension = self._inner.dimension
        self.documents: list[str] = []
        self.queries: list[str] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.documents.extend(texts)
        return await self._inner.embed(texts)

    async def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return await self._inner.embed_query(text)


class RecordingExtractor:
    """Each user event becomes one fact quoting the whole event; summaries are recognisable."""

    name = EXTRACTOR

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.summaries: list[Any] = []

    async def extract(self, request: Any) -> list[CandidateFact]:
        self.requests.append(request)
        return [
            CandidateFact(
                content=e.content,
                category="fact",
                spans=(SourceSpan(event_id=e.event_id, start=0, end=len(e.content), quote=e.content),),
            )
            for e in request.events
            if e.role == "user"
        ]

    async def summarize(self, request: Any) -> str:
        self.summaries.append(request)
        return f"{SUMMARY_PREFIX} {len(request.events)} events"


class RecordingStrategy:
    """Proposes one pinned line naming the query, and records the contexts it ran with."""

    name = STRATEGY

    def __init__(self) -> None:
        self.contexts: list[Any] = []

    async def run(self, ctx: Any) -> list[RecallCandidate]:
        self.contexts.append(ctx)
        return [
            RecallCandidate(
                key=f"{STRATEGY}:1",
                source=STRATEGY,
                section="Exercised",
                text=f"exercised strategy saw: {ctx.query}",
                pinned=True,
            )
        ]


class RecordingRedactor:
    """Finds ``CODEWORD-<digits>`` tokens."""

    name = REDACTOR

    def __init__(self) -> None:
        self.texts: list[str] = []

    def detect(self, text: str) -> list[Detection]:
        self.texts.append(text)
        return [
            Detection(kind="codeword", start=m.start(), end=m.end(), redactor=self.name)
            for m in re.finditer(r"\bCODEWORD-\d+\b", text)
        ]


@click.command(COMMAND)
@click.option("--name", default="world")
def exercised_command(name: str) -> None:
    """A command added by the exercised-hooks test plugin."""
    click.echo(f"hello, {name}, from the exercised plugin")


def exercised_policy() -> MemoryPolicy:
    return MemoryPolicy(
        name=POLICY,
        description="registered by the exercised-hooks test plugin",
        critical_slots=(CriticalSlot(name="exercised_slot", description="a slot only this policy has"),),
    )


class ExercisedPlugin:
    """Implements every hook spec and records what Engram handed to it."""

    def __init__(self) -> None:
        self.embedders: list[RecordingEmbedder] = []
        self.extractors: list[RecordingExtractor] = []
        self.strategy = RecordingStrategy()
        self.redactor = RecordingRedactor()
        self.policy = exercised_policy()
        self.events: list[Any] = []
        self.facts: list[Any] = []
        self.traces: list[Any] = []
        self.clis: list[Any] = []

    def _embedder(self, settings: Any = None) -> RecordingEmbedder:
        self.embedders.append(RecordingEmbedder())
        return self.embedders[-1]

    def _extractor(self, settings: Any = None) -> RecordingExtractor:
        self.extractors.append(RecordingExtractor())
        return self.extractors[-1]

    # registration hooks
    @hookimpl
    def register_embedders(self, register: Callable[..., None]) -> None:
        register(EMBEDDER, self._embedder)

    @hookimpl
    def register_extractors(self, register: Callable[..., None]) -> None:
        register(EXTRACTOR, self._extractor)

    @hookimpl
    def register_recall_strategies(self, register: Callable[..., None]) -> None:
        register(self.strategy)

    @hookimpl
    def register_redactors(self, register: Callable[..., None]) -> None:
        register(self.redactor)

    @hookimpl
    def register_policies(self, register: Callable[..., None]) -> None:
        register(self.policy)

    @hookimpl
    def register_commands(self, cli: Any) -> None:
        self.clis.append(cli)
        cli.add_command(exercised_command)

    # observation hooks
    @hookimpl
    def event_recorded(self, event: Any) -> None:
        self.events.append(event)

    @hookimpl
    def fact_derived(self, fact: Any) -> None:
        self.facts.append(fact)

    @hookimpl
    def recall_traced(self, trace: Any) -> None:
        self.traces.append(trace)


@pytest.fixture
def plugin() -> Iterator[ExercisedPlugin]:
    """The plugin, registered for the duration of one test (registration is read on every use)."""
    pm = plugins.get_plugin_manager()
    obj = ExercisedPlugin()
    pm.register(obj, name=PLUGIN_NAME)
    try:
        pm.check_pending()
        yield obj
    finally:
        pm.unregister(name=PLUGIN_NAME)


@pytest.fixture
async def client(database_url: str, plugin: ExercisedPlugin) -> AsyncIterator[Engram]:
    """A client on the shared database created *after* the plugin was registered."""
    async with Engram(database_url, memory_policy="default", embedder="hashing") as e:
        yield e


def task(scope: dict[str, str]) -> str:
    return f"{scope['user_id']}:{uuid.uuid4().hex[:6]}"


async def drain(e: Engram, scope: dict[str, str], rounds: int = 50) -> None:
    for _ in range(rounds):
        await e.process_jobs(50)
        stats = await e.job_stats(user_id=scope["user_id"])
        if stats.due == 0 and stats.running == 0:
            return
    raise AssertionError(f"queue did not drain: {stats}")


# --------------------------------------------------------------------------- completeness


def hook_spec_names() -> list[str]:
    from engram import hookspecs

    return sorted(
        name
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and getattr(obj, "engram_spec", None) is not None
    )


def test_each_hook_spec_is_exercised_here() -> None:
    names = hook_spec_names()
    assert {"register_embedders", "event_recorded", "recall_traced"} <= set(names)
    implemented = {
        name
        for name, member in vars(ExercisedPlugin).items()
        if getattr(member, "engram_impl", None) is not None
    }
    assert sorted(implemented) == names, "ExercisedPlugin must implement every hook spec"
    module = sys.modules[__name__]
    missing = [name for name in names if not callable(getattr(module, f"test_hook_{name}", None))]
    assert missing == [], f"hook specs with no test_hook_<name> in this file: {missing}"


def test_plugin_is_registered_and_visible(plugin: ExercisedPlugin) -> None:
    assert PLUGIN_NAME in plugins.iter_plugin_names()
    assert plugins.embedder_factories()[EMBEDDER] == plugin._embedder
    assert plugins.recall_strategies()[STRATEGY] is plugin.strategy
    assert plugins.redactors()[REDACTOR] is plugin.redactor
    assert plugins.policies()[POLICY] is plugin.policy


# --------------------------------------------------------------------------- registration hooks


async def test_hook_register_embedders(plugin: ExercisedPlugin, scratch_dsn: str) -> None:
    # Its own database: the embedder defines a new embedding space.
    scope = {"user_id": f"user-{uuid.uuid4().hex[:12]}", "agent_id": "agent-test"}
    async with Engram(scratch_dsn, memory_policy="default", embedder=EMBEDDER) as e:
        embedder = e.get_embedder()
        assert isinstance(embedder, RecordingEmbedder) and plugin.embedders == [embedder]
        fact = await e.add("The user's favourite colour is teal", **scope)
        trace = await e.trace_recall("which colour does the user like?", **scope)
    assert "The user's favourite colour is teal" in embedder.documents
    assert embedder.queries == ["which colour does the user like?"]
    assert any(item.ids.get("fact_id") == fact.fact_id for item in trace.items)
    vector_runs = [s for s in trace.strategies if s.name == "facts_vector"]
    assert vector_runs and vector_runs[0].candidates >= 1


async def test_hook_register_extractors(
    plugin: ExercisedPlugin, database_url: str, scope: dict[str, str]
) -> None:
    tid = task(scope)
    async with Engram(database_url, memory_policy="default", embedder="hashing", extractor=EXTRACTOR) as e:
        extractor = e.get_extractor()
        assert isinstance(extractor, RecordingExtractor) and plugin.extractors == [extractor]
        turn = await e.record_turn(
            tid, user_message="I always fly with Aer Lingus", assistant_response="Noted.", **scope
        )
        await drain(e, scope)
        facts = await e.list_facts(**scope)
        lineage = await e.lineage(facts[0].fact_id, **scope) if facts else None
        checkpoint = await e.checkpoint(tid, **scope)
        latest = await e.latest_checkpoint(tid, **scope)
    # process_jobs claims due jobs of every tenant (the queue is shared), so jobs
    # other tests left behind may pass through this extractor too: look at ours.
    (request,) = [r for r in extractor.requests if r.user_id == scope["user_id"]]
    assert [ev.event_id for ev in request.events] == list(turn.event_ids)
    assert [f.content for f in facts] == ["I always fly with Aer Lingus"]
    assert lineage is not None and lineage.event_ids == (turn.user_event_id,)
    # The worker's derived fact went through fact_derived too.
    assert [f.fact_id for f in plugin.facts if f.user_id == scope["user_id"]] == [facts[0].fact_id]
    assert extractor.summaries and checkpoint.summary == f"{SUMMARY_PREFIX} 2 events"
    assert latest is not None and latest.checkpoint_id == checkpoint.checkpoint_id


async def test_hook_register_recall_strategies(
    plugin: ExercisedPlugin, database_url: str, scope: dict[str, str]
) -> None:
    base = MemoryPolicy(name="with-exercised-strategy")
    policy = MemoryPolicy(
        name="with-exercised-strategy", recall={"weights": {**base.recall.weights, STRATEGY: 1.0}}
    )
    async with Engram(database_url, memory_policy=policy, embedder="hashing") as e:
        trace = await e.trace_recall("what is on the exercised list?", **scope)
    (ctx,) = plugin.strategy.contexts
    assert (ctx.query, ctx.user_id, ctx.agent_id) == ("what is on the exercised list?", *scope.values())
    (run,) = [s for s in trace.strategies if s.name == STRATEGY]
    assert run.candidates == 1 and run.selected == 1
    assert "exercised strategy saw: what is on the exercised list?" in trace.context
    assert any(item.strategy == STRATEGY for item in trace.items)


async def test_hook_register_redactors(
    plugin: ExercisedPlugin, database_url: str, scope: dict[str, str], raw_conn: Any
) -> None:
    policy = MemoryPolicy(name="redacts-codewords", redaction={"before_storage": [REDACTOR]})
    tid = task(scope)
    async with Engram(database_url, memory_policy=policy, embedder="hashing") as e:
        event = await e.record_event(
            tid, role="user", content="the vault opens with CODEWORD-4711 on Fridays", **scope
        )
        (stored,) = await e.get_task_events(tid, **scope)
    assert "the vault opens with CODEWORD-4711 on Fridays" in plugin.redactor.texts
    assert event.content == stored.content == "the vault opens with [REDACTED:codeword] on Fridays"
    on_disk = await raw_conn.fetchval("SELECT content FROM events WHERE event_id = $1", event.event_id)
    assert "CODEWORD-4711" not in on_disk


async def test_hook_register_policies(
    plugin: ExercisedPlugin, database_url: str, scope: dict[str, str]
) -> None:
    async with Engram(database_url, memory_policy=POLICY, embedder="hashing") as e:
        assert e.policy is plugin.policy
        await e.add("Exercised slot value: kumquat", slot="exercised_slot", **scope)
        trace = await e.trace_recall("anything new?", **scope)
    assert trace.policy == POLICY
    assert trace.context.startswith("## Pinned facts\n- Exercised slot value: kumquat")
    assert PLUGIN_NAME in dict(plugins.registrations_by_plugin("register_policies"))


def test_hook_register_commands(plugin: ExercisedPlugin) -> None:
    from click.testing import CliRunner

    from engram import cli

    # A first import of engram.cli, with the plugin already registered, has run the hook too.
    cli.main.commands.pop(COMMAND, None)
    plugin.clis.clear()
    before = dict(cli.main.commands)
    try:
        cli._load_commands()  # what importing engram.cli does, now with the plugin registered
        assert plugin.clis == [cli.main]
        assert cli.main.commands[COMMAND] is exercised_command
        result = CliRunner().invoke(cli.main, [COMMAND, "--name", "bees"])
        assert result.exit_code == 0, result.output
        assert result.output == "hello, bees, from the exercised plugin\n"
        assert COMMAND in CliRunner().invoke(cli.main, ["--help"]).output
    finally:
        cli.main.commands.clear()
        cli.main.commands.update(before)


def test_register_commands_cannot_replace_a_builtin_command() -> None:
    from engram import PluginError, cli

    @click.command("worker")
    def impostor() -> None:
        """Not the real worker."""

    class Replacer:
        @hookimpl
        def register_commands(self, cli: Any) -> None:
            cli.add_command(impostor)

    before = dict(cli.main.commands)
    pm = plugins.get_plugin_manager()
    pm.register(Replacer(), name="replacer")
    try:
        with pytest.raises(PluginError, match="worker"):
            cli._load_commands()
    finally:
        pm.unregister(name="replacer")
        cli.main.commands.clear()
        cli.main.commands.update(before)
    assert cli.main.commands["worker"] is not impostor


# --------------------------------------------------------------------------- observation hooks


async def test_hook_event_recorded(plugin: ExercisedPlugin, client: Engram, scope: dict[str, str]) -> None:
    tid = task(scope)
    event = await client.record_event(tid, role="user", content="observed event", **scope)
    turn = await client.record_turn(tid, user_message="question", assistant_response="answer", **scope)
    mine = [ev for ev in plugin.events if ev.user_id == scope["user_id"]]
    assert [ev.event_id for ev in mine] == [event.event_id, *turn.event_ids]
    assert mine[0] == event == await client.get_event(event.event_id, **scope)
    assert [(ev.role, ev.content) for ev in mine[1:]] == [("user", "question"), ("assistant", "answer")]


async def test_hook_fact_derived(plugin: ExercisedPlugin, client: Engram, scope: dict[str, str]) -> None:
    fact = await client.add("The user keeps bees", category="fact", **scope)
    mine = [f for f in plugin.facts if f.user_id == scope["user_id"]]
    assert mine == [fact]
    assert mine[0].fact_id == (await client.get_fact(fact.fact_id, **scope)).fact_id


async def test_hook_recall_traced(plugin: ExercisedPlugin, client: Engram, scope: dict[str, str]) -> None:
    await client.add("The user keeps bees", **scope)
    trace = await client.trace_recall("does the user keep animals?", **scope)
    result = await client.recall("bees", **scope)
    mine = [t for t in plugin.traces if t.user_id == scope["user_id"]]
    assert len(mine) == 2
    assert mine[0] == trace
    assert (mine[1].query, mine[1].context) == ("bees", result.context)
    assert "The user keeps bees" in result.context


def test_unregistered_plugin_is_gone(plugin: ExercisedPlugin) -> None:
    pm = plugins.get_plugin_manager()
    pm.unregister(name=PLUGIN_NAME)
    try:
        assert EMBEDDER not in plugins.embedder_factories()
        assert POLICY not in plugins.policies()
    finally:
        pm.register(plugin, name=PLUGIN_NAME)  # the fixture unregisters it again
