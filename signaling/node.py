"""Serving one node: listening sockets and the signals that drain or stop it.

- SIGINT: stop now (everyone is told ``room_closed``/``server_shutdown``).
- SIGTERM: drain first (no new rooms, participants told to reconnect
  elsewhere), wait up to ``cluster.drain_timeout`` for them to go, then stop.
- SIGUSR1: drain and keep running (an operator empties a node; it leaves
  the cluster's placement until restarted).

A worker of ``digiclinic serve --workers N`` listens twice: on the shared
public port (SO_REUSEPORT: the kernel spreads new connections over the
workers) and on a port of its own, the one redirects name. Draining closes
the shared listener first so no new connection lands on a draining worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from dataclasses import dataclass

from aiohttp import web

from signaling.cluster import DRAINER
from signaling.config import Config

logger = logging.getLogger(__name__)


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int
    shared: bool = False  # SO_REUSEPORT with the other workers; closed on drain


async def serve_node(
    app: web.Application,
    config: Config,
    listens: list[Listen],
    ssl_context: ssl.SSLContext | None,
) -> None:
    loop = asyncio.get_running_loop()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sites: list[tuple[Listen, web.TCPSite]] = []
    try:
        for listen in listens:
            site = web.TCPSite(
                runner,
                listen.host,
                listen.port,
                ssl_context=ssl_context,
                reuse_port=listen.shared or None,
            )
            await site.start()
            sites.append((listen, site))
        stop = asyncio.Event()
        drainer = app[DRAINER]

        async def close_shared() -> None:
            for listen, site in sites:
                if listen.shared:
                    await site.stop()

        drainer.listeners.append(close_shared)

        async def terminate() -> None:
            logger.info("SIGTERM: draining before exit")
            await drainer.drain()
            if not await drainer.wait_drained(config.cluster.drain_timeout):
                logger.warning("drain timeout: stopping with participants still here")
            stop.set()

        tasks: set[asyncio.Task[None]] = set()

        def on_term() -> None:
            task = asyncio.get_running_loop().create_task(terminate())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, on_term)
        loop.add_signal_handler(signal.SIGUSR1, drainer.start_drain)
        try:
            await stop.wait()
        finally:
            for task in list(tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        # a second signal (a terminal's Ctrl-C reaches the workers and their
        # supervisor) is ignored, not allowed to interrupt the cleanup
        for sig in SIGNALS:
            loop.add_signal_handler(sig, _ignore)
        await runner.cleanup()
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)


def _ignore() -> None:
    pass
