"""ConsultClient's reconnection after a lost connection (node gone or draining).

Connect again (to the node the server suggested in ``reconnect``, else to
the URL the client started with, then its ``fallback_urls`` in turn: any
node of the cluster will do), join with the
same token (redirects followed) and, for a single-use token, the resume
secret of the first ``joined``, wait in the lobby if the role waits there,
and republish the same tracks. Delays grow from ``reconnect_delay`` to
``max_reconnect_delay``; fatal join errors (a refused token) end it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp

from signaling.client_errors import FATAL_JOIN_ERRORS, ClientError

if TYPE_CHECKING:
    from signaling.client import ConsultClient

logger = logging.getLogger(__name__)


async def reconnect_loop(client: ConsultClient, reason: str) -> None:
    republish = list(client._publishing)
    client._publishing.clear()
    await client._close_ws()
    await client._drop_media()
    client._changed.set()
    delay = client.reconnect_delay
    for attempt in range(1, client.reconnect_attempts + 1):
        entries = [client.entry_url, *client.fallback_urls]
        url = client._hint or entries[(attempt - 1) % len(entries)]
        client._hint = None
        try:
            await client._open(url)
            joined = await client.join()
            if joined["state"] == "lobby":
                await client.wait_until(lambda: client.state in ("active", "denied", "closed"), 600)
            if client.state != "active":
                raise ClientError(client.state, "not admitted after reconnecting")
            if republish:
                await client.publish(republish)
        except (ClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            code = getattr(exc, "code", type(exc).__name__)
            logger.info("reconnect attempt %d (%s) failed: %s", attempt, reason, code)
            await client._close_ws()
            await client._drop_media()
            if code in FATAL_JOIN_ERRORS:
                break
            client.state = "reconnecting"
            await asyncio.sleep(delay)
            delay = min(delay * 2, client.max_reconnect_delay)
            continue
        client.reconnections += 1
        client.events.append({"type": "reconnected", "attempts": attempt, "url": client.url})
        client._changed.set()
        return
    client.state = "closed"
    client._changed.set()
