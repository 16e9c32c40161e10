"""Real signals to this process: SIGTERM finishes the visit before `stopped`, SIGHUP reloads the config."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

from edge_agent.device.config import EdgeConfig, KeySpec, load_config
from edge_agent.device.ops.notify import SystemdNotifier
from edge_agent.device.ops.signals import ConfigReloader, SignalHandlers


def test_sigterm_finishes_the_visit_then_stops(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(2)
    order: list[str] = []

    async def finish_visit() -> None:
        order.append("finishing")
        await asyncio.sleep(0.2)  # building + sealing the report
        order.append("sealed")

    async def main() -> None:
        handlers = SignalHandlers(finish_visit, notifier=SystemdNotifier(env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}))
        handlers.install()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)  # impatient second signal: ignored while finishing
            await asyncio.wait_for(handlers.stopped.wait(), 5)
            order.append("stopped")
        finally:
            handlers.uninstall()

    asyncio.run(main())
    assert order == ["finishing", "sealed", "stopped"]
    assert sock.recv(4096).decode().split("\n")[0] == "STOPPING=1"
    sock.close()


def test_sighup_reloads_live_keys_and_reports_restart_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[logging]\nlevel = "info"\n')
    applied: list[tuple[EdgeConfig, list[str]]] = []

    def apply_live(cfg: EdgeConfig, keys: list[KeySpec]) -> None:
        applied.append((cfg, [k.key for k in keys]))

    reloader = ConfigReloader(load_config(path, env={}), apply_live, env={})
    results: list[tuple[list[str], list[str]]] = []

    async def main() -> None:
        handlers = SignalHandlers(lambda: None, on_reload=lambda: results.append(reloader.reload()))
        handlers.install()
        try:
            path.write_text('[logging]\nlevel = "debug"\n[gpio]\nclaim_window_s = 120\n[asr]\ncpu_threads = 2\n')
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(100):
                await asyncio.sleep(0.02)
                if results:
                    break
            path.write_text("[logging]\nlevel = 'loud'\n")  # a broken edit: refused, config kept
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(100):
                await asyncio.sleep(0.02)
                if len(results) == 2:
                    break
        finally:
            handlers.uninstall()

    asyncio.run(main())
    assert results[0] == (["gpio.claim_window_s", "logging.level"], ["asr.cpu_threads"])
    assert applied[0][1] == ["gpio.claim_window_s", "logging.level"]
    assert results[1] == ([], [])
    running = reloader.current
    assert running.logging.level == "debug" and running.gpio.claim_window_s == 120
    assert running.asr.cpu_threads == 1  # restart-only: the running value stays until restart
    assert reloader.pending_restart == ["asr.cpu_threads"]
