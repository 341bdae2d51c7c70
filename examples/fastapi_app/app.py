"""FastAPI service: authenticated chat with Engram memory.

Run the API and a worker as two processes:

    ENGRAM_API_TOKENS="token-alice:alice,token-bob:bob" uvicorn examples.fastapi_app.app:app
    python -m examples.fastapi_app.worker

Engram does no authentication: the bearer-token dependency below is where your
real auth goes, and the user id it yields is the only one the route ever passes
to Engram.

``/metrics`` shows queue figures of every tenant, so it takes its own token
(``ENGRAM_METRICS_TOKEN``, sent as a bearer token by the scraper) and is off
while that variable is unset; a user's token never opens it.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator

from engram import Engram, EngramError, InvalidInputError, ScopeError, hookimpl, plugins

AGENT_ID = "assistant"

# ---------------------------------------------------------------- auth (yours goes here)

_bearer = HTTPBearer(auto_error=False)


def _tokens() -> dict[str, str]:
    raw = os.environ.get("ENGRAM_API_TOKENS", "")
    pairs = (item.split(":", 1) for item in raw.split(",") if ":" in item)
    return {token.strip(): user.strip() for token, user in pairs}


async def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Authenticate the caller and yield their user id.  Replace with your identity provider."""
    if credentials is None or credentials.credentials not in _tokens():
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or missing bearer token")
    return _tokens()[credentials.credentials]


async def metrics_scraper(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let only the metrics scraper in: the figures cover every tenant's jobs."""
    expected = os.environ.get("ENGRAM_METRICS_TOKEN", "")
    if not expected:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "metrics are off: set ENGRAM_METRICS_TOKEN")
    given = credentials.credentials if credentials is not None else ""
    # Constant-time comparison: the token is a shared secret.
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or missing metrics token")


# ---------------------------------------------------------------- the model call (pluggable)

ModelCall = Callable[[str, str], Awaitable[str]]


async def local_stand_in_model(memory_context: str, user_message: str) -> str:
    """A deterministic stand-in so the example runs with no keys; swap in your LLM client."""
    remembered = [line[2:] for line in memory_context.splitlines() if line.startswith("- ")]
    hint = f" I remember: {remembered[0]}" if remembered else ""
    return f"You said: {user_message}.{hint}"


# ---------------------------------------------------------------- metrics (Prometheus text)


class RecallMetrics:
    """Counts recalls and their latency through the `recall_traced` observation hook."""

    buckets = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0)

    def __init__(self) -> None:
        self.count = 0
        self.total_ms = 0.0
        self.bucket_counts = [0] * len(self.buckets)
        self.missing_terms = 0

    @hookimpl
    def recall_traced(self, trace: Any) -> None:
        self.count += 1
        self.total_ms += trace.total_ms
        self.missing_terms += len(trace.missing_expected_terms)
        for i, bound in enumerate(self.buckets):
            if trace.total_ms <= bound:
                self.bucket_counts[i] += 1


metrics = RecallMetrics()

# ---------------------------------------------------------------- lifecycle

engram: Engram | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global engram
    engram = Engram(memory_policy=os.environ.get("ENGRAM_POLICY", "default"))
    await engram.connect()  # opens the pool, checks the server, applies migrations
    pm = plugins.get_plugin_manager()
    if not pm.is_registered(metrics):
        pm.register(metrics, name="fastapi-recall-metrics")
    try:
        yield
    finally:
        await engram.close()  # drains the pool
        engram = None


app = FastAPI(title="Engram chat example", lifespan=lifespan)
app.state.model_call = local_stand_in_model


def _printable(value: object) -> str:
    """``value`` as text that always encodes as UTF-8 (lone surrogates escaped)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


@app.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where and why, never the input itself.

    FastAPI's default handler echoes each invalid input back; JSON allows a lone
    surrogate escape (``"\\ud800"``) that UTF-8 cannot encode, and echoing one
    crashed the handler (a 500).  The input is the caller's own text anyway.
    """
    detail = [
        {
            "loc": [_printable(part) for part in error.get("loc", ())],
            "msg": _printable(error.get("msg", "")),
            "type": _printable(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_ENTITY, content={"detail": detail})


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=8000)
    task_id: str = Field(min_length=1, max_length=200)

    @field_validator("message", "task_id")
    @classmethod
    def _unicode_text(cls, value: str) -> str:
        # A lone surrogate is a valid Python str but not text: it cannot be stored,
        # sent to a model or printed.  Refuse it here, as a 422.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
        return value


class ChatResponse(BaseModel):
    reply: str
    task_id: str
    memory_items: int
    missing_expected_terms: list[str]
    recall_ms: float


def _client() -> Engram:
    if engram is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "memory is not connected")
    return engram


@app.post("/chat", response_model=ChatResponse)
async def chat(
    body: ChatRequest, request: Request, user_id: Annotated[str, Depends(current_user)]
) -> ChatResponse:
    memory = _client()
    try:
        trace = await memory.trace_recall(
            query=body.message, agent_id=AGENT_ID, user_id=user_id, task_id=body.task_id
        )
        reply = await request.app.state.model_call(trace.context, body.message)
        await memory.record_turn(
            body.task_id,
            user_message=body.message,
            assistant_response=reply,
            agent_id=AGENT_ID,
            user_id=user_id,
            enqueue_processing=True,  # the worker process derives facts later
        )
    except ScopeError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    except InvalidInputError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    return ChatResponse(
        reply=reply,
        task_id=body.task_id,
        memory_items=len(trace.items),
        missing_expected_terms=list(trace.missing_expected_terms),
        recall_ms=trace.total_ms,
    )


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    memory = _client()
    try:
        await memory.ping()
    except EngramError as exc:  # pragma: no cover - only when the database is gone
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    return {"status": "ok"}


@app.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(metrics_scraper)])
async def prometheus_metrics() -> str:
    """Queue backlog and failures (the signals to alert on) and recall latency.

    Operator figures across all tenants: only the metrics token opens it.
    """
    memory = _client()
    stats = (await memory.job_stats()).model_dump()
    lines = [
        "# HELP engram_jobs Memory jobs by state.",
        "# TYPE engram_jobs gauge",
    ]
    for key, value in stats.items():
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and key != "oldest_pending_age_seconds"
        ):
            lines.append(f'engram_jobs{{state="{key}"}} {value}')
    age = stats.get("oldest_pending_age_seconds")
    lines += [
        "# HELP engram_oldest_pending_job_age_seconds Age of the oldest queued job.",
        "# TYPE engram_oldest_pending_job_age_seconds gauge",
        f"engram_oldest_pending_job_age_seconds {float(age or 0.0)}",
        "# HELP engram_recall_ms Recall latency in milliseconds.",
        "# TYPE engram_recall_ms histogram",
    ]
    # bucket_counts are already cumulative: a recall counts in every bucket above it.
    for bound, n in zip(metrics.buckets, metrics.bucket_counts, strict=True):
        lines.append(f'engram_recall_ms_bucket{{le="{bound}"}} {n}')
    lines += [
        f'engram_recall_ms_bucket{{le="+Inf"}} {metrics.count}',
        f"engram_recall_ms_sum {metrics.total_ms:.3f}",
        f"engram_recall_ms_count {metrics.count}",
        "# HELP engram_recall_missing_terms_total Salient terms recall could not cover.",
        "# TYPE engram_recall_missing_terms_total counter",
        f"engram_recall_missing_terms_total {metrics.missing_terms}",
        f"# generated {time.time():.0f}",
    ]
    return "\n".join(lines) + "\n"
