"""How the provider's HTTP clients present themselves, and what they take from the environment.

Every client (the API session, the triggers' async client, the download session) sends
:data:`USER_AGENT`; the requests-based ones are :class:`EnvironmentSession`.
"""

from __future__ import annotations

import requests

from airflow_provider_camb import __version__

#: The one User-Agent of every request this provider sends.
USER_AGENT = f"airflow-provider-camb/{__version__}"


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
