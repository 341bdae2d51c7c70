"""A local HTTP stand-in for the OpenAI and Anthropic APIs.

It is a real HTTP/1.1 server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, a free
port, serving from a background thread), so the official SDKs talk to it exactly
as they would to the hosted service: same paths, headers, JSON bodies, status
codes and timeouts.  Only the model is missing, so each test scripts the answers.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/embeddings`` (OpenAI;
SDK ``base_url=standin.openai_base_url``) and ``POST /v1/messages`` (Anthropic;
SDK ``base_url=standin.anthropic_base_url``).

Usage::

    with StandIn() as standin:
        standin.script(CHAT, Reply.json(chat_completion('{"facts": []}')))
        standin.script(CHAT, Reply.rate_limited(retry_after="7"))
        ...                                   # call the code under test
        body = standin.requests_to(CHAT)[0].text   # what was really sent

Each path has a FIFO queue of :class:`Reply` objects; when a path's queue is
empty a harmless default answer is sent (no facts; deterministic embeddings of
the requested size; a short summary).  Every request is recorded *before* it is
answered, so a request whose reply is delayed past the client's timeout is
still visible to the test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
MESSAGES = "/v1/messages"

__all__ = [
    "CHAT",
    "EMBEDDINGS",
    "MESSAGES",
    "RecordedRequest",
    "Reply",
    "StandIn",
    "anthropic_text",
    "anthropic_tool_use",
    "chat_completion",
    "embeddings_response",
    "fake_vector",
    "serve",
]


# --------------------------------------------------------------------------- response bodies


def chat_completion(
    content: str | None,
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    model: str = "gpt-4o-mini",
) -> dict[str, Any]:
    """A Chat Completions response body whose single choice says ``content``."""
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text`` (no meaning; only for wire tests)."""
    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out += [b / 255.0 - 0.5 for b in digest]
        counter += 1
    out = out[:dimensions]
    norm = sum(x * x for x in out) ** 0.5 or 1.0
    return [x / norm for x in out]


def embeddings_response(
    vectors: list[list[float]], *, model: str = "text-embedding-3-small", encoding_format: str = "float"
) -> dict[str, Any]:
    """An embeddings response body; ``encoding_format="base64"`` packs float32 like the API."""

    def encode(vector: list[float]) -> Any:
        if encoding_format == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        return vector

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": len(vectors), "total_tokens": len(vectors)},
    }


def _anthropic_message(content: list[dict[str, Any]], stop_reason: str, model: str) -> dict[str, Any]:
    return {
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 10},
    }


def anthropic_tool_use(
    tool_input: Any,
    *,
    name: str = "record_facts",
    stop_reason: str = "tool_use",
    model: str = "claude-sonnet-4-5",
) -> dict[str, Any]:
    """A Messages response body with one ``tool_use`` block."""
    block = {"type": "tool_use", "id": "toolu_standin", "name": name, "input": tool_input}
    return _anthropic_message([block], stop_reason, model)


def anthropic_text(
    text: str, *, stop_reason: str = "end_turn", model: str = "claude-sonnet-4-5"
) -> dict[str, Any]:
    """A Messages response body with one text block."""
    return _anthropic_message([{"type": "text", "text": text}], stop_reason, model)


# --------------------------------------------------------------------------- scripting


@dataclass(frozen=True)
class Reply:
    """One scripted answer.  Build with the class methods."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: For error replies: message placed in the provider-shaped error body at send time.
    error_message: str | None = None

    @classmethod
    def json(cls, payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status=status, body=json.dumps(payload).encode(), headers=dict(headers or {}))

    @classmethod
    def raw(cls, body: bytes | str, *, status: int = 200, content_type: str = "application/json") -> Reply:
        """Send ``body`` verbatim (e.g. a truncated, non-JSON body)."""
        data = body.encode() if isinstance(body, str) else body
        return cls(status=status, body=data, content_type=content_type)

    @classmethod
    def error(
        cls, status: int, message: str = "stand-in error", *, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """An error in the shape the endpoint's real API uses."""
        return cls(status=status, headers=dict(headers or {}), error_message=message)

    @classmethod
    def rate_limited(cls, *, retry_after: str | None = None, retry_after_ms: str | None = None) -> Reply:
        headers = {}
        if retry_after is not None:
            headers["retry-after"] = retry_after
        if retry_after_ms is not None:
            headers["retry-after-ms"] = retry_after_ms
        return cls.error(429, "Rate limit reached (stand-in)", headers=headers)

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls.error(status, "The server had an error (stand-in)")

    def delayed(self, seconds: float) -> Reply:
        """The same reply, sent only after ``seconds`` (use more than the client's timeout)."""
        return Reply(self.status, self.body, self.content_type, self.headers, seconds, self.error_message)


def _error_body(path: str, status: int, message: str) -> bytes:
    if path.startswith(MESSAGES):
        kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    kind = "rate_limit_exceeded" if status == 429 else "server_error"
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}}).encode()


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the stand-in received it."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


# --------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs expect
    server: _Server
    timeout = 30  # idle keep-alive connections end instead of holding a thread forever

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        body = self._read_body()
        path = self.path.split("?", 1)[0]
        recorded = RecordedRequest(
            method="POST", path=path, headers={k.lower(): v for k, v in self.headers.items()}, body=body
        )
        reply = self.server.owner._take(recorded)
        if reply.delay and self.server.owner._stopping.wait(reply.delay):
            return  # shutting down: drop the connection
        self._send(path, reply)

    def do_GET(self) -> None:
        self._send(self.path, Reply.error(404, f"no such stand-in endpoint: {self.path}"))

    def _send(self, path: str, reply: Reply) -> None:
        body = (
            reply.body
            if reply.error_message is None
            else _error_body(path, reply.status, reply.error_message)
        )
        try:
            self.send_response(reply.status)
            self.send_header("content-type", reply.content_type)
            self.send_header("content-length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (timeout test); nothing left to answer.
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a delayed reply must not hold up shutdown
    owner: StandIn


class StandIn:
    """The stand-in server.  Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(self, *, embedding_dimensions: int = 1536) -> None:
        #: Size of default embeddings when the request does not name ``dimensions``.
        self.embedding_dimensions = embedding_dimensions
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Reply]] = defaultdict(deque)
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> StandIn:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        # A short poll interval: shutdown() waits for the next poll, and tests
        # start and stop a server each.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="standin-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.AsyncOpenAI`` (the OpenAI SDK expects the ``/v1`` in it)."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for ``anthropic.AsyncAnthropic`` (the SDK adds ``/v1/messages`` itself)."""
        return self.url

    # -- scripting and inspection

    def script(self, path: str, *replies: Reply) -> None:
        """Queue replies for ``path``; they are used in order, one per request."""
        with self._lock:
            self._queues[path].extend(replies)

    def pending(self, path: str) -> int:
        """Scripted replies not yet used."""
        with self._lock:
            return len(self._queues[path])

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._queues.clear()

    def _take(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            queue = self._queues.get(request.path)
            if queue:
                return queue.popleft()
        return self._default(request)

    def _default(self, request: RecordedRequest) -> Reply:
        try:
            payload = request.json()
        except ValueError:
            return Reply.error(400, "request body is not JSON")
        if request.path == CHAT:
            wants_json = isinstance(payload.get("response_format"), dict)
            return Reply.json(chat_completion('{"facts": []}' if wants_json else "Stand-in summary."))
        if request.path == EMBEDDINGS:
            inputs = payload.get("input")
            texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
            dims = int(payload.get("dimensions") or self.embedding_dimensions)
            vectors = [fake_vector(str(t), dims) for t in texts]
            fmt = payload.get("encoding_format") or "float"
            return Reply.json(
                embeddings_response(vectors, model=payload.get("model", ""), encoding_format=fmt)
            )
        if request.path == MESSAGES:
            if payload.get("tools"):
                return Reply.json(anthropic_tool_use({"facts": []}, name=payload["tools"][0]["name"]))
            return Reply.json(anthropic_text("Stand-in summary."))
        return Reply.error(404, f"no such stand-in endpoint: {request.path}")


@contextmanager
def serve(**kwargs: Any) -> Iterator[StandIn]:
    """``with serve() as standin:`` — or wrap it in a pytest fixture."""
    with StandIn(**kwargs) as standin:
        yield standin
