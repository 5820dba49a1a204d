"""Signed, expiring download URLs: an HMAC over the path and the expiry time."""

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

    def sign(self, path: str, expires: str) -> str:
        """The hex signature of ``path`` valid until ``expires``.

        :param path: the file path, e.g. ``/files/tts/1001.flac``.
        :param expires: the expiry as the URL carries it (Unix seconds, as text).
        """
        return hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def query(self, path: str, lifetime: float) -> str:
        """The query string (``expires=...&signature=...``) that makes ``path`` fetchable.

        :param path: the file path.
        :param lifetime: seconds from now until the URL expires.
        """
        expires = f"{time.time() + lifetime:.3f}"
        return urlencode({"expires": expires, "signature": self.sign(path, expires)})

    def refusal(self, path: str, query: dict[str, str]) -> tuple[str, str] | None:
        """Why a request for ``path`` with ``query`` is refused, as an S3 ``(code, message)``;
        ``None`` when the signature matches and has not expired.

        :param path: the requested file path.
        :param query: the request's query parameters.
        """
        expires, signature = query.get("expires"), query.get("signature")
        if not expires or not signature:
            return "AccessDenied", "Query-string authentication requires expires and signature"
        if not hmac.compare_digest(signature, self.sign(path, expires)):
            return "SignatureDoesNotMatch", "The request signature we calculated does not match"
        try:
            expired = time.time() >= float(expires)
        except ValueError:
            expired = True
        if expired:
            return "AccessDenied", "Request has expired"
        return None
