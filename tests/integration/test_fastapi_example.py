"""The FastAPI example end to end: real uvicorn, real HTTP, a real worker process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "tok-metrics"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(base: str, api: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert api.poll() is None, "the API process exited"
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.2)


@pytest.fixture(scope="module")  # one API and one worker for every test here
def services(database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "ENGRAM_DATABASE_URL": database_url,
        "ENGRAM_EMBEDDER": "hashing",
        "ENGRAM_API_TOKENS": f"tok-a:{alice},tok-b:{bob}",
        "ENGRAM_METRICS_TOKEN": METRICS_TOKEN,
        "ENGRAM_WORKER_INTERVAL": "0.2",
        "PYTHONPATH": str(ROOT),
    }
    port = _free_port()
    api = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.fastapi_app.app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    worker = subprocess.Popen([sys.executable, "-m", "examples.fastapi_app.worker"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, api)
        yield base, {"alice": alice, "bob": bob}
    finally:
        for proc in (api, worker):
            proc.send_signal(signal.SIGTERM)
        for proc in (api, worker):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        assert worker.returncode == 0, "the worker did not stop cleanly on SIGTERM"


def test_chat_remembers_across_turns_through_the_worker(services: tuple[str, dict[str, str]]) -> None:
    base, users = services
    alice = {"Authorization": "Bearer tok-a"}
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.post("/chat", json={"message": "hi", "task_id": "x"}).status_code == 401
        assert (
            http.post(
                "/chat", json={"message": "hi", "task_id": "x"}, headers={"Authorization": "Bearer nope"}
            ).status_code
            == 401
        )

        task = f"{users['alice']}-trip"
        first = http.post(
            "/chat", json={"message": "I live in Lisbon and I love hiking.", "task_id": task}, headers=alice
        )
        assert first.status_code == 200, first.text
        assert first.json()["reply"].startswith("You said: I live in Lisbon")

        # The worker (another process) derives facts from the ledger.
        deadline = time.monotonic() + 60
        while True:
            reply = http.post(
                "/chat", json={"message": "Where do I live?", "task_id": f"{task}-2"}, headers=alice
            )
            assert reply.status_code == 200, reply.text
            if "Lisbon" in reply.json()["reply"] and reply.json()["memory_items"] >= 1:
                break
            assert time.monotonic() < deadline, reply.json()
            time.sleep(0.5)

        # Bob sees none of Alice's memory, and cannot write into her task.
        bob = {"Authorization": "Bearer tok-b"}
        theirs = http.post(
            "/chat", json={"message": "Where do I live? Lisbon?", "task_id": f"{users['bob']}-t"}, headers=bob
        )
        assert theirs.status_code == 200 and "I remember" not in theirs.json()["reply"]
        # The same task id from Bob is Bob's own task (task ids belong to their scope).
        same_id = http.post("/chat", json={"message": "Where do I live?", "task_id": task}, headers=bob)
        assert same_id.status_code == 200 and "hiking" not in same_id.json()["reply"]
        assert http.post("/chat", json={"message": "", "task_id": task}, headers=alice).status_code == 422

        metrics = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
        assert 'engram_jobs{state="failed"} 0' in metrics
        assert "engram_recall_ms_count" in metrics and "engram_oldest_pending_job_age_seconds" in metrics


def test_metrics_take_the_metrics_token_and_no_user_token(services: tuple[str, dict[str, str]]) -> None:
    base, _ = services
    with httpx.Client(base_url=base, timeout=30) as http:
        # Before: /metrics answered anyone, with every tenant's queue figures.
        assert http.get("/metrics").status_code == 401
        for token in ("tok-a", "tok-b", "nope", METRICS_TOKEN + "x"):
            response = http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, token
            assert "engram_jobs" not in response.text
        ok = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert ok.status_code == 200 and "engram_jobs{" in ok.text


def test_metrics_are_off_without_a_metrics_token(database_url: str) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "ENGRAM_METRICS_TOKEN"}
    env.update(ENGRAM_DATABASE_URL=database_url, ENGRAM_EMBEDDER="hashing", PYTHONPATH=str(ROOT))
    env["ENGRAM_API_TOKENS"] = "tok-a:alice"
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app.app:app", "--port", str(port)],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, api)
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 404
        assert (
            httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer tok-a"}, timeout=10).status_code
            == 404
        )
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=30)


@pytest.mark.parametrize(
    "raw_body",
    [
        # Valid JSON (a \\u escape of a lone surrogate) but not valid text.
        '{"message": "\\ud800", "task_id": "t-1"}',
        '{"message": "hello", "task_id": "t-\\udfff"}',
        # Invalid for another reason too: the default handler echoed this input back.
        '{"message": "' + "\\ud800" * 8001 + '", "task_id": "t-1"}',
        '{"message": "\\ud800", "task_id": ""}',
    ],
    ids=["message", "task_id", "too-long", "with-another-error"],
)
def test_lone_surrogates_are_a_422_not_a_500(services: tuple[str, dict[str, str]], raw_body: str) -> None:
    base, _ = services
    response = httpx.post(
        f"{base}/chat",
        content=raw_body.encode("ascii"),
        headers={"Authorization": "Bearer tok-a", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail and all({"loc", "msg", "type"} <= set(error) for error in detail)
    assert '"input"' not in response.text  # the caller's text is not echoed back
