"""What every channel's webhook does the same way: refuse early, and read no more than it must."""
from __future__ import annotations

from fastapi import Request

MAX_BODY = 64 * 1024  # a WeChat or Twilio message is a few KB; nothing legitimate comes near this


class Refused(Exception):
    """The request is refused before anything is stored: answer `status` with `reason`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_capped(request: Request, limit: int = MAX_BODY) -> bytes:
    """Reads the body, refusing (413) as soon as it is over `limit`; never reads more."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
