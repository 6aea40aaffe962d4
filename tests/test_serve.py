"""What `make run` does, end to end: migrate, load the demo, serve, chat, restart, history kept."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "bot.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([*CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dealercare {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[str]:
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([*CLI, "serve", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else "server died"
            assert time.monotonic() < deadline, "server did not become ready in 120 s"
            time.sleep(0.3)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_fresh_database_is_migrated_seeded_served_and_keeps_history_across_restart(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        DEALERCARE_DATABASE_URL=f"sqlite:///{tmp_path / 'dealercare.db'}",
        DEALERCARE_NLU_MODEL_DIR=str(ROOT / "var" / "nlu-test"),
        DEALERCARE_LOG_JSON="false",
    )
    run_cli(env, "db", "upgrade")
    assert "loaded demo dealer" in run_cli(env, "demo", "load")
    assert "already loaded" in run_cli(env, "demo", "load")
    port = free_port()

    with serving(env, port) as base:
        owners = httpx.get(f"{base}/simulator/api/owners", params={"dealer": "demo"}).json()
        assert len(owners) == 50
        owner = owners[0]["id"]
        page = httpx.get(f"{base}/simulator")
        assert page.status_code == 200 and "simulator.js" in page.text

        hello = httpx.post(f"{base}/simulator/api/messages", json={"dealer": "demo", "owner": owner, "text": "你好"}).json()
        assert "您好" in hello["replies"][0]["text"]
        assert hello["parse"]["intent"]["name"] == "greet"

        human = httpx.post(f"{base}/simulator/api/messages", json={"dealer": "demo", "owner": owner, "text": "转人工"}).json()
        assert human["conversation"]["status"] == "waiting_staff"
        assert "人工客服" in human["replies"][-1]["text"]

    with serving(env, port) as base:
        history = httpx.get(f"{base}/simulator/api/messages", params={"dealer": "demo", "owner": owner}).json()
        texts = [m["text"] for m in history]
        assert "你好" in texts and "转人工" in texts
        assert any("您好" in t for t in texts)
        silent = httpx.post(f"{base}/simulator/api/messages", json={"dealer": "demo", "owner": owner, "text": "还在吗"}).json()
        assert silent["replies"] == [], "a handed-off conversation stays with staff after a restart"
