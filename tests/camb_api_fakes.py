"""Answers of a fake Camb.ai API for requests_mock: the narrow unit tests of hook and operators."""

from __future__ import annotations

import re
from typing import Any

BASE_URL = "https://camb.test/apis"
BULK = f"{BASE_URL}/tts-results"
SINGLE = re.compile(rf"{re.escape(BASE_URL)}/tts-result/(\d+)")


def audio_url(run_id: int) -> str:
    """A signed URL as Camb.ai hands out: its query must never reach a log."""
    return f"https://storage.test/audio/{run_id}.flac?X-Amz-Signature=secret{run_id}"


def bulk_answer(shape: str = "url", leave_out: frozenset[int] = frozenset()) -> Any:
    """``POST /tts-results`` in either documented value shape, leaving out ``leave_out``."""

    def answer(request: Any, context: Any) -> dict[str, Any]:
        return {
            str(i): audio_url(i) if shape == "url" else {"output_url": audio_url(i)}
            for i in request.json()["run_ids"]
            if i not in leave_out
        }

    return answer


def single_answer(bad: dict[int, str] | None = None) -> Any:
    """``GET /tts-result/{run_id}?output_type=file_url``; IDs in ``bad`` get a 400 with that detail."""
    bad = bad or {}

    def answer(request: Any, context: Any) -> dict[str, Any]:
        run_id = int(SINGLE.match(request.url).group(1))  # type: ignore[union-attr]
        if run_id in bad:
            context.status_code = 400
            return {"detail": bad[run_id]}
        return {"output_url": audio_url(run_id)}

    return answer
