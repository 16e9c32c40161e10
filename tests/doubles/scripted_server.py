"""``python -m tests.doubles.scripted_server``: run the daemon with the reference runner (tests, debugging).

The product entry point is ``edge-agent serve``; this one exists so tests can
start a real server in a separate process (and kill -9 it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from edge_agent.device.grpc.server import EdgeAgentServer, ServerConfig
from edge_agent.errors import EdgeAgentError
from tests.doubles.scripted_runner import ScriptedVisitRunner, SpectralVoiceEnroller


async def serve_forever(
    config: ServerConfig,
    ready: "asyncio.Future[int] | None" = None,
    advertise: bool = False,
) -> None:
    """Run until SIGTERM/SIGINT. With ``advertise`` the device announces itself by mDNS."""
    server = EdgeAgentServer(config, ScriptedVisitRunner(), SpectralVoiceEnroller())
    port = await server.start()
    advertiser = None
    if advertise:
        from edge_agent.device.mdns import Advertiser

        advertiser = Advertiser(room=config.room, port=port, fingerprint=server.fingerprint)
        await advertiser.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set_result(port)
    try:
        await stop.wait()
    finally:
        if advertiser is not None:
            await advertiser.stop()
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.doubles.scripted_server")
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--crl", type=Path)
    parser.add_argument("--room", default="room")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, help="write the bound port here once serving")
    parser.add_argument("--advertise", action="store_true", help="announce by mDNS")
    parser.add_argument("--room-code-secret", type=Path, help="presence: the room-code secret")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(bundle=args.bundle, data_dir=args.data_dir, room=args.room, crl=args.crl, host=args.host, port=args.port,
                          room_code_secret=args.room_code_secret)

    async def run() -> None:
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task: asyncio.Future[object] = asyncio.ensure_future(serve_forever(config, ready=ready, advertise=args.advertise))
        waiting: set[asyncio.Future[object]] = {task, ready}  # type: ignore[arg-type]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if ready in done and args.port_file:
            tmp = args.port_file.with_suffix(".tmp")
            tmp.write_text(str(ready.result()))
            tmp.replace(args.port_file)
        await task

    try:
        asyncio.run(run())
    except EdgeAgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
