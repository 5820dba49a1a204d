"""The async HTTP client of the triggerer's event loop: one per loop, shared by every trigger.

Many triggers start in the same instant on a shared triggerer; a client each would mean a TLS
context, a connection pool and a resolver each. One client per event loop serves them all (the
API key travels per request, so triggers of different connections share it too). A client is
bound to the loop it was made on, hence one per loop rather than one per process.
"""

from __future__ import annotations

import asyncio
import weakref

import httpx

from airflow_provider_camb.hooks._sessions import USER_AGENT

#: Connections kept open per loop: more than a few hundred status calls in flight is a rate limit.
MAX_CONNECTIONS = 64

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def shared_async_client() -> httpx.AsyncClient:
    """The client of the running event loop, made on first use.

    Redirects are never followed (the API key must reach the API origin only); proxies and CA
    bundles come from the environment, as for the blocking hook.
    """
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=True,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
        )
        _clients[loop] = client
    return client
