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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def services(database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "ENGRAM_DATABASE_URL": database_url,
        "ENGRAM_EMBEDDER": "hashing",
        "ENGRAM_API_TOKENS": f"tok-a:{alice},tok-b:{bob}",
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
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert api.poll() is None, "the API process exited"
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
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
        assert http.post("/chat", json={"message": "hello", "task_id": task}, headers=bob).status_code == 403
        assert http.post("/chat", json={"message": "", "task_id": task}, headers=alice).status_code == 422

        metrics = http.get("/metrics").text
        assert 'engram_jobs{state="failed"} 0' in metrics
        assert "engram_recall_ms_count" in metrics and "engram_oldest_pending_job_age_seconds" in metrics
