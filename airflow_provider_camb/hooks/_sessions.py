"""requests sessions that take the environment's network settings but no credentials from it."""

from __future__ import annotations

import requests


def _no_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An auth hook that adds nothing: with a session auth set, requests never reads ``~/.netrc``."""
    return request


class EnvironmentSession(requests.Session):
    """The environment's proxies and CA bundle, never its credentials.

    ``trust_env`` stays on, so ``HTTP(S)_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE`` and
    ``CURL_CA_BUNDLE`` apply as they do for every other requests-based client (behind an egress
    proxy a request must go through it). What ``trust_env`` would also bring, the credentials of
    ``~/.netrc`` (``NETRC``), is kept out: the Camb.ai API authenticates with its own key header,
    signed storage URLs need nothing, and no host, nor wherever it redirects, should see them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.auth = _no_credentials

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        # requests' own version re-reads ~/.netrc for the redirect target; add nothing, strip all.
        prepared_request.headers.pop("Authorization", None)
