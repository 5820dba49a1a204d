"""Signed, expiring download URLs: an HMAC over the HTTP method, the path and the expiry time.

Like an S3 SigV4 presigned URL, the method is part of what is signed but not of the URL: a URL
handed out for ``GET`` does not work for ``HEAD`` or ``PUT``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlencode


class UrlSigner:
    """Signs file paths with a per-instance random secret and checks the signatures back."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def sign(self, path: str, expires: str, method: str = "GET") -> str:
        """The hex signature of ``method`` on ``path``, valid until ``expires``.

        :param path: the file path, e.g. ``/files/tts/1001.flac``.
        :param expires: the expiry as the URL carries it (Unix seconds, as text).
        :param method: the HTTP method the URL is for.
        """
        message = f"{method.upper()}\n{path}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def query(self, path: str, lifetime: float, method: str = "GET") -> str:
        """The query string (``expires=...&signature=...``) that makes ``path`` fetchable.

        :param path: the file path.
        :param lifetime: seconds from now until the URL expires.
        :param method: the HTTP method the URL is for.
        """
        expires = f"{time.time() + lifetime:.3f}"
        return urlencode({"expires": expires, "signature": self.sign(path, expires, method)})

    def refusal(self, path: str, query: dict[str, str], method: str = "GET") -> tuple[str, str] | None:
        """Why a ``method`` request for ``path`` with ``query`` is refused, as an S3
        ``(code, message)``; ``None`` when the signature matches and has not expired.

        :param path: the requested file path.
        :param query: the request's query parameters.
        :param method: the request's method (or the method to check the signature against).
        """
        expires, signature = query.get("expires"), query.get("signature")
        if not expires or not signature:
            return "AccessDenied", "Query-string authentication requires expires and signature"
        if not hmac.compare_digest(signature, self.sign(path, expires, method)):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided."
                " Check your key and signing method.",
            )
        try:
            expired = time.time() >= float(expires)
        except ValueError:
            expired = True
        if expired:
            return "AccessDenied", "Request has expired"
        return None
