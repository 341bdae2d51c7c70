"""Calling the async Engram client from synchronous code.

Engram is async: its asyncpg pool belongs to the event loop that created it and
cannot be used from any other loop.  Frameworks such as LangChain and LlamaIndex
call *sync* methods too (``retriever.invoke``, ``store.put``, ``memory.get``), so
the adapters need a way to run a coroutine to completion from a plain thread.

Two pieces live here:

* :class:`BackgroundLoop` -- one event loop running forever in a daemon thread.
  Coroutines are handed to it with :func:`asyncio.run_coroutine_threadsafe`.
* :class:`SyncBridge` -- an :class:`~engram.Engram` client bound to the loop that
  owns its pool.  ``bridge.run(coro)`` blocks until the coroutine finishes on
  that loop; ``await bridge.arun(coro)`` does the same from any *other* loop
  (or simply awaits when already on the right one).

Never a loop per call: a bridge keeps one loop for its whole life.  A sync call
made from inside the bridge's own loop would wait for itself forever, so it is
refused with :class:`LoopReentryError` instead of deadlocking.

This module imports nothing heavy (no framework, no database driver).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .client import Engram

T = TypeVar("T")

#: Seconds a sync call waits for its coroutine before giving up.
DEFAULT_TIMEOUT = 120.0

__all__ = ["DEFAULT_TIMEOUT", "BackgroundLoop", "LoopReentryError", "SyncBridge"]


class LoopReentryError(ConfigurationError):
    """A blocking sync call was made from inside the event loop it would wait on.

    Waiting there would deadlock (the loop cannot run the coroutine while it is
    blocked waiting for it).  Use the async method (``ainvoke``, ``abatch``,
    ``aget``, ...) from async code, or call the sync method from another thread.
    """


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _discard(coro: Awaitable[Any]) -> None:
    """Close a coroutine that will never run, so Python does not warn about it."""
    close = getattr(coro, "close", None)
    if close is not None:
        close()


class BackgroundLoop:
    """An asyncio event loop that runs forever in its own daemon thread.

    Start it once and keep it: every coroutine handed to it runs on the same
    loop, so resources bound to a loop (an asyncpg pool) stay usable.

    >>> loop = BackgroundLoop()
    >>> loop.run(asyncio.sleep(0, result=42))
    42
    >>> loop.close()
    """

    def __init__(self, *, name: str = "engram-loop", timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._started.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._started.set)
        try:
            self._loop.run_forever()
        finally:
            try:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            finally:
                self._loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop that runs in the background thread."""
        return self._loop

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    @property
    def is_running(self) -> bool:
        return not self._closed and self._thread.is_alive() and self._loop.is_running()

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.get_ident() == self._thread.ident

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop and return a thread-safe future."""
        if not self.is_running:
            _discard(coro)
            raise ConfigurationError("the background event loop is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and block until it finishes (sync code only)."""
        if self.in_loop_thread():
            _discard(coro)
            raise LoopReentryError(
                "a blocking call was made from inside the background event loop it waits on; "
                "await the async method instead"
            )
        return _wait(self.submit(coro), self.timeout if timeout is None else timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the loop (after cancelling what still runs on it) and join the thread.  Idempotent."""
        if self._closed:
            return
        if self.in_loop_thread():
            raise LoopReentryError("a background loop cannot be closed from inside itself")
        self._closed = True
        if self._thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(_cancel_pending(), self._loop)
            try:
                fut.result(timeout)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def _cancel_pending() -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def _wait(future: concurrent.futures.Future[T], timeout: float | None) -> T:
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"the Engram call did not finish within {timeout} seconds") from None


class SyncBridge:
    """An Engram client together with the event loop that owns its pool.

    Build one of two ways:

    * ``SyncBridge.start(dsn, **engram_kwargs)`` -- for sync code (and mixed code).
      Starts a :class:`BackgroundLoop`, creates and connects the ``Engram`` client
      *on* that loop, and owns both: :meth:`close` closes the client and stops the
      loop.
    * ``SyncBridge.attach(client)`` -- for async applications that already hold a
      client.  Called inside a running loop it binds to that loop; sync calls from
      other threads are handed to it, and a sync call made on that loop raises
      :class:`LoopReentryError`.  The bridge does not own the client.

    ``run(coro)`` is the sync entry point; ``await arun(coro)`` the async one.
    """

    def __init__(
        self,
        client: Engram,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        owner: BackgroundLoop | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self._client = client
        self._owner = owner
        self._loop = owner.loop if owner is not None else loop
        self.timeout = timeout
        self._closed = False

    # ------------------------------------------------------------------ construction

    @classmethod
    def start(
        cls,
        dsn: str | None = None,
        *,
        factory: Callable[[], Engram] | None = None,
        connect: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
        **engram_kwargs: Any,
    ) -> SyncBridge:
        """Start a background loop and create (and connect) an ``Engram`` client on it.

        ``factory`` builds the client instead of ``Engram(dsn, **engram_kwargs)``;
        it is called on the background loop.
        """
        owner = BackgroundLoop(name="engram-sync", timeout=timeout)

        async def create() -> Engram:
            if factory is not None:
                client = factory()
            else:
                from .client import Engram

                client = Engram(dsn, **engram_kwargs)
            if connect:
                await client.connect()
            return client

        try:
            client = owner.run(create())
        except BaseException:
            owner.close()
            raise
        return cls(client, owner=owner, timeout=timeout)

    @classmethod
    def attach(
        cls,
        client: Engram,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> SyncBridge:
        """Bind an existing client to ``loop`` (default: the running loop, if any).

        Outside any running loop and without ``loop`` the bridge is *unbound*:
        async calls simply await on the caller's loop, and sync calls raise
        :class:`~engram.errors.ConfigurationError` (use :meth:`start` for sync code).
        """
        return cls(client, loop=loop or _running_loop(), timeout=timeout)

    @classmethod
    def wrap(cls, engram: Engram | SyncBridge, *, timeout: float | None = DEFAULT_TIMEOUT) -> SyncBridge:
        """A bridge for ``engram``: a bridge is returned as is, a client is attached."""
        if isinstance(engram, SyncBridge):
            return engram
        return cls.attach(engram, timeout=timeout)

    # ------------------------------------------------------------------ properties

    @property
    def client(self) -> Engram:
        """The async Engram client (use it with ``run``/``arun``)."""
        return self._client

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop that owns the client's pool (``None`` for an unbound bridge)."""
        return self._loop

    @property
    def owns_loop(self) -> bool:
        return self._owner is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def in_loop(self) -> bool:
        """True when the caller runs on the bridge's loop (where sync calls would deadlock)."""
        if self._owner is not None and self._owner.in_loop_thread():
            return True
        return self._loop is not None and _running_loop() is self._loop

    # ------------------------------------------------------------------ running

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the client's loop and block until it is done.

        Raises :class:`LoopReentryError` when called from that loop itself.
        """
        wait = self.timeout if timeout is None else timeout
        if self._closed:
            _discard(coro)
            raise ConfigurationError("this SyncBridge is closed")
        if self.in_loop():
            _discard(coro)
            raise LoopReentryError(
                "a synchronous Engram call was made from inside the event loop that owns the client; "
                "it would deadlock. Use the async method (ainvoke/abatch/aget/...) here, or run the "
                "sync call in another thread"
            )
        if self._owner is not None:
            return self._owner.run(coro, wait)
        loop = self._loop
        if loop is None:
            _discard(coro)
            raise ConfigurationError(
                "this Engram client is not bound to a running event loop, so sync calls cannot reach it; "
                "create it with engram.sync.SyncBridge.start(...) for use from sync code"
            )
        if loop.is_closed() or not loop.is_running():
            _discard(coro)
            raise ConfigurationError(
                "the event loop that owns this Engram client is not running, so a sync call would wait "
                "forever; use SyncBridge.start(...) for sync code"
            )
        return _wait(asyncio.run_coroutine_threadsafe(coro, loop), wait)

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the client's loop from any loop.

        On the client's own loop (or for an unbound bridge) this is a plain
        ``await``; from another loop the coroutine is handed over and awaited
        without blocking the caller's loop.
        """
        if self._closed:
            _discard(coro)
            raise ConfigurationError("this SyncBridge is closed")
        loop = self._loop
        if loop is None or _running_loop() is loop:
            return await coro
        if loop.is_closed() or not loop.is_running():
            _discard(coro)
            raise ConfigurationError("the event loop that owns this Engram client is not running")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"the Engram call did not finish within {self.timeout} seconds") from None

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the client and stop the loop if this bridge owns them.  Idempotent.

        An attached bridge only forgets the client (its owner closes it).
        """
        if self._closed:
            return
        if self._owner is not None:
            try:
                self._owner.run(self._client.close())
            finally:
                self._closed = True
                self._owner.close()
        self._closed = True

    async def aclose(self) -> None:
        """``close`` for async code: never blocks the caller's loop."""
        if self._closed:
            return
        if self._owner is not None:
            await asyncio.to_thread(self.close)
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "owned loop" if self._owner else ("attached" if self._loop else "unbound")
        return f"<SyncBridge {mode}{' closed' if self._closed else ''}>"
