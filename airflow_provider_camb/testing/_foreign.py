"""The foreign host a scheduled redirect points at: a second loopback listener, started on demand.

A client that follows a redirect to another host and sends its ``x-api-key`` there has leaked
the key.  This listener answers like the API (so the mistake does not show as a failure) and
its journal shows whether the key arrived.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from airflow_provider_camb.testing._http import Server

if TYPE_CHECKING:
    from airflow_provider_camb.testing._http import Respond

# (address to bind, host name to put in the Location).  127.0.0.2 is a different host on
# Linux's whole-127/8 loopback; where only 127.0.0.1 binds (macOS by default), the name
# "localhost" still differs from "127.0.0.1" as a host string, which is what clients compare.
_CANDIDATES = (
    ("127.0.0.2", "127.0.0.2"),
    ("127.0.0.3", "127.0.0.3"),
    ("127.0.0.1", "localhost"),
    ("127.0.0.1", "127.0.0.1"),
)


class ForeignHost:
    """A listener on a loopback host other than the emulator's own.

    :param own_host: the emulator's host, which the foreign host must differ from.
    :param respond: called for every request the foreign host receives.
    """

    def __init__(self, own_host: str, respond: Respond) -> None:
        self._own_host = own_host
        self._respond = respond
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._host = ""

    def ensure_started(self) -> str:
        """Start listening unless already listening; returns ``host:port``."""
        with self._lock:
            if self._server is None:
                self._server, name = self._bind()
                self._host = f"{name}:{self._server.server_port}"
                self._server.serve_in_background("camb-emulator-foreign")
            return self._host

    def _bind(self) -> tuple[Server, str]:
        failure: OSError | None = None
        for address, name in _CANDIDATES:
            if name == self._own_host:
                continue
            try:
                return Server((address, 0), self._respond), name
            except OSError as err:  # e.g. 127.0.0.2 is not configured on this machine
                failure = err
        raise OSError(f"no loopback address other than {self._own_host} can be bound") from failure

    @property
    def host(self) -> str:
        """``host:port`` of the listener; readable after :meth:`stop` too.

        :raises RuntimeError: when it has never been started.
        """
        if not self._host:
            raise RuntimeError("no redirect has been scheduled, so there is no foreign host yet")
        return self._host

    def location(self, target: str) -> str:
        """The URL of ``target`` (path and query) on the foreign host, starting it if needed.

        :param target: the request target as the client sent it.
        """
        return f"http://{self.ensure_started()}{target}"

    def stop(self) -> None:
        """Stop listening and close its connections.  Safe to call when never started."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()
