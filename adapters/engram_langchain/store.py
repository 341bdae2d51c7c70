"""``EngramStore``: a LangGraph ``BaseStore`` kept as Engram facts.

Mapping (see ``docs/adapters/langchain.md``):

* **Scope.**  ``user_id`` is ``namespace[0]`` (or the ``user_id`` given to the
  constructor, in which case whole namespaces live inside that one user's scope);
  ``agent_id`` is the constructor's.  Every Engram call is scoped by both.
* **Item.**  One active fact per ``(namespace, key)``.  The fact's ``slot`` is a
  hash of the namespace and key, so get/put/delete by key are exact lookups and
  the database's one-active-value-per-slot index keeps a key unique.  The fact's
  ``metadata["langgraph_store"]`` holds the namespace, the key, the JSON value and
  the first-write time; its ``content`` is the value's text (what retrieval sees).
* **Writes.**  Putting an existing key supersedes its fact (the old version is
  kept, as Engram never rewrites history); a ``None`` value retracts it.
* **Search.**  Without a query: the matching items in first-write order.  With a
  query: Engram ``recall`` ranks the scope's facts and the items it found come
  first (``score`` is the fused recall score); other matching items follow with
  ``score=None``, as ``InMemoryStore`` does for items it could not score.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from engram import Engram, InvalidInputError
from engram.sync import SyncBridge

__all__ = ["EngramStore"]

#: Metadata key under which a fact carries its store item.
META_KEY = "langgraph_store"
#: Category of store facts (handy when browsing facts).
CATEGORY = "langgraph_store"
#: Engram's limits: fact text and facts listed per scope.
MAX_CONTENT_CHARS = 4_000
MAX_SCOPE_ITEMS = 10_000
MAX_RECALL = 200


def slot_for(namespace: Sequence[str], key: str) -> str:
    """The Engram slot of a store item: ``lg_`` and 40 hex digits of a hash of (namespace, key)."""
    digest = hashlib.blake2b(json.dumps([list(namespace), key]).encode(), digest_size=20).hexdigest()
    return f"lg_{digest}"


@dataclass(frozen=True)
class _Record:
    """A store item as read from its fact."""

    fact_id: int
    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def item(self) -> Item:
        return Item(
            value=dict(self.value),
            key=self.key,
            namespace=self.namespace,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def search_item(self, score: float | None) -> SearchItem:
        return SearchItem(
            namespace=self.namespace,
            key=self.key,
            value=dict(self.value),
            created_at=self.created_at,
            updated_at=self.updated_at,
            score=score,
        )


def _record(fact: Any) -> _Record | None:
    meta = fact.metadata.get(META_KEY) if isinstance(fact.metadata, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("value"), dict):
        return None
    created = meta.get("created_at")
    return _Record(
        fact_id=fact.fact_id,
        namespace=tuple(meta["namespace"]),
        key=str(meta["key"]),
        value=meta["value"],
        created_at=datetime.fromisoformat(created) if created else fact.created_at,
        updated_at=fact.created_at,
    )


# --------------------------------------------------------------------------- values and filters


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _at_path(value: Any, path: str) -> Any:
    """A value at a dotted path (``"a.b"``; ``"$"`` is the whole value); list steps fan out."""
    if path == "$":
        return value
    current = [value]
    for part in path.replace("[*]", "").split("."):
        nxt: list[Any] = []
        for v in current:
            if isinstance(v, Mapping) and part in v:
                nxt.append(v[part])
            elif isinstance(v, list):
                nxt.extend(x[part] for x in v if isinstance(x, Mapping) and part in x)
        current = nxt
    return current


def content_for(value: Mapping[str, Any], fields: Sequence[str] | None) -> str:
    """The text Engram embeds and recalls for a value: its strings (of ``fields`` if given)."""
    parts = _strings(_at_path(value, "$") if not fields else [_at_path(value, f) for f in fields])
    text = "\n".join(parts) if parts else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text[:MAX_CONTENT_CHARS]


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda a, b: a == b,
    "$ne": lambda a, b: a != b,
    "$gt": lambda a, b: float(a) > float(b),
    "$gte": lambda a, b: float(a) >= float(b),
    "$lt": lambda a, b: float(a) < float(b),
    "$lte": lambda a, b: float(a) <= float(b),
}


def matches(actual: Any, wanted: Any) -> bool:
    """Does ``actual`` satisfy the filter value ``wanted`` (JSONB-style containment, ``$`` operators)?"""
    if isinstance(wanted, Mapping):
        ops = [k for k in wanted if k.startswith("$")]
        if ops:
            for op in ops:
                if op not in _OPERATORS:
                    raise InvalidInputError(f"unsupported filter operator {op!r}")
                try:
                    if not _OPERATORS[op](actual, wanted[op]):
                        return False
                except (TypeError, ValueError):
                    return False
            return True
        return isinstance(actual, Mapping) and all(matches(actual.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list | tuple):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(wanted)
            and all(matches(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return bool(actual == wanted)


def _condition_holds(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    part = (
        namespace[: len(path)]
        if condition.match_type == "prefix"
        else namespace[len(namespace) - len(path) :]
    )
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True))


def _check_labels(namespace: Sequence[str]) -> None:
    for label in namespace:
        if not isinstance(label, str) or not label or "." in label or "\x00" in label:
            raise InvalidNamespaceError(f"invalid namespace label {label!r} in {tuple(namespace)}")


# --------------------------------------------------------------------------- the store


class EngramStore(BaseStore):
    """LangGraph long-term memory store backed by Engram facts.

    ``EngramStore(engram, agent_id="assistant")`` maps ``namespace[0]`` to the
    Engram ``user_id``; ``EngramStore(engram, agent_id=..., user_id="u1")`` keeps
    every namespace inside one user's scope.  ``engram`` is an ``Engram`` client
    (async use on its own loop) or a :class:`engram.sync.SyncBridge` (sync and
    async use from anywhere).  ``index_fields`` picks the value fields whose text
    Engram embeds (default: every string in the value); ``memory_policy``
    overrides the client's policy for query search.
    """

    supports_ttl = False

    __slots__ = ("_agent_id", "_bridge", "_fields", "_policy", "_user_id")

    def __init__(
        self,
        engram: Engram | SyncBridge,
        *,
        agent_id: str,
        user_id: str | None = None,
        index_fields: Sequence[str] | None = None,
        memory_policy: Any = None,
    ) -> None:
        self._bridge = SyncBridge.wrap(engram)
        self._agent_id = agent_id
        self._user_id = user_id
        self._fields = list(index_fields) if index_fields else None
        self._policy = memory_policy

    @property
    def engram(self) -> Engram:
        return self._bridge.client

    # ------------------------------------------------------------------ BaseStore

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ops in order (reads see the state before this batch's writes, as in ``InMemoryStore``)."""
        return self._bridge.run(self._execute(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async twin of :meth:`batch`; runs on the client's loop."""
        return await self._bridge.arun(self._execute(list(ops)))

    # ------------------------------------------------------------------ execution

    async def _execute(self, ops: list[Op]) -> list[Result]:
        results: list[Result] = []
        writes: dict[tuple[tuple[str, ...], str], PutOp] = {}
        snapshots: dict[str, list[_Record]] = {}
        for op in ops:
            if isinstance(op, GetOp):
                results.append(await self._get(op))
            elif isinstance(op, SearchOp):
                results.append(await self._search(op, snapshots))
            elif isinstance(op, ListNamespacesOp):
                results.append(await self._list_namespaces(op, snapshots))
            elif isinstance(op, PutOp):
                _check_labels(op.namespace)
                writes[(tuple(op.namespace), str(op.key))] = op
                results.append(None)
            else:
                raise InvalidInputError(f"unknown store operation {type(op).__name__}")
        for put in writes.values():
            await self._put(put)
        return results

    def _user_of(self, namespace: Sequence[str], what: str) -> str:
        if self._user_id is not None:
            return self._user_id
        if not namespace or namespace[0] == "*":
            raise InvalidInputError(
                f"EngramStore maps namespace[0] to the Engram user_id, so {what} needs a namespace "
                "that starts with a concrete user id (or construct the store with user_id=...)"
            )
        return namespace[0]

    async def _records(self, user_id: str, snapshots: dict[str, list[_Record]]) -> list[_Record]:
        """Every store item of the user's scope, in first-write order (cached for the batch)."""
        if user_id not in snapshots:
            facts = await self.engram.list_facts(
                agent_id=self._agent_id, user_id=user_id, status="active", limit=MAX_SCOPE_ITEMS
            )
            records = [r for r in map(_record, facts) if r is not None]
            records.sort(key=lambda r: (r.created_at, r.fact_id))
            snapshots[user_id] = records
        return snapshots[user_id]

    async def _current(self, namespace: tuple[str, ...], key: str) -> tuple[str, _Record | None]:
        user_id = self._user_of(namespace, "an item")
        facts = await self.engram.list_facts(
            agent_id=self._agent_id,
            user_id=user_id,
            status="active",
            slot=slot_for(namespace, key),
            limit=1,
        )
        for fact in facts:
            record = _record(fact)
            if record is not None and record.namespace == namespace and record.key == key:
                return user_id, record
        return user_id, None

    async def _get(self, op: GetOp) -> Item | None:
        _check_labels(op.namespace)
        if not op.namespace:
            return None
        _, record = await self._current(tuple(op.namespace), str(op.key))
        return record.item() if record else None

    async def _put(self, op: PutOp) -> None:
        namespace, key = tuple(op.namespace), str(op.key)
        if not namespace:
            raise InvalidNamespaceError("namespace cannot be empty")
        user_id, current = await self._current(namespace, key)
        if op.value is None:
            if current is not None:
                await self.engram.retract_fact(current.fact_id, agent_id=self._agent_id, user_id=user_id)
            return
        value = dict(op.value)
        fields = op.index if isinstance(op.index, list) else self._fields
        content = content_for(value, fields)
        meta: dict[str, Any] = {
            META_KEY: {
                "namespace": list(namespace),
                "key": key,
                "value": value,
                "created_at": current.created_at.isoformat() if current else None,
            }
        }
        fact = await self.engram.add(
            content,
            agent_id=self._agent_id,
            user_id=user_id,
            slot=slot_for(namespace, key),
            category=CATEGORY,
            metadata=meta,
        )
        if current is not None and fact.fact_id == current.fact_id and fact.metadata != meta:
            # ``add`` keeps a slot's fact when the text is unchanged; the value changed, so
            # record a new version explicitly.
            await self.engram.supersede_fact(
                fact.fact_id, content, agent_id=self._agent_id, user_id=user_id, metadata=meta
            )

    async def _search(self, op: SearchOp, snapshots: dict[str, list[_Record]]) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        _check_labels(prefix)
        user_id = self._user_of(prefix, "search")
        candidates = [
            r
            for r in await self._records(user_id, snapshots)
            if r.namespace[: len(prefix)] == prefix
            and all(matches(r.value.get(k), v) for k, v in (op.filter or {}).items())
        ]
        start, stop = max(op.offset, 0), max(op.offset, 0) + max(op.limit, 0)
        if not op.query or not candidates:
            return [r.search_item(None) for r in candidates[start:stop]]
        want = min(MAX_RECALL, max(stop * 3, 20))
        result = await self.engram.recall(
            op.query,
            agent_id=self._agent_id,
            user_id=user_id,
            limit=want,
            memory_policy=self._policy,
        )
        scores: dict[int, float] = {}
        for item in result.items:
            fact_id = item.ids.get("fact_id")
            if isinstance(fact_id, int) and fact_id not in scores:
                scores[fact_id] = item.score
        scored = sorted((r for r in candidates if r.fact_id in scores), key=lambda r: -scores[r.fact_id])
        rest = [r for r in candidates if r.fact_id not in scores]
        ranked = [r.search_item(scores[r.fact_id]) for r in scored] + [r.search_item(None) for r in rest]
        return ranked[start:stop]

    async def _list_namespaces(
        self, op: ListNamespacesOp, snapshots: dict[str, list[_Record]]
    ) -> list[tuple[str, ...]]:
        conditions = tuple(op.match_conditions or ())
        for condition in conditions:
            _check_labels([p for p in condition.path if p != "*"])
        if self._user_id is not None:
            user_id = self._user_id
        else:
            prefixes = [c.path for c in conditions if c.match_type == "prefix" and c.path]
            if not prefixes:
                raise InvalidInputError(
                    "EngramStore maps namespace[0] to the Engram user_id, so list_namespaces needs a "
                    "prefix that starts with a concrete user id (or construct the store with user_id=...)"
                )
            user_id = self._user_of(tuple(prefixes[0]), "list_namespaces")
        found = {r.namespace for r in await self._records(user_id, snapshots)}
        kept = {ns for ns in found if all(_condition_holds(c, ns) for c in conditions)}
        if op.max_depth is not None:
            kept = {ns[: op.max_depth] for ns in kept}
        return sorted(kept)[op.offset : op.offset + op.limit]
