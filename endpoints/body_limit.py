"""A cap on every request body, applied before the app sees the request.

FastAPI reads and parses a JSON body before it runs any dependency, authentication included,
so without a cap anyone could make a container buffer and `json.loads` as much as they care
to send, signed in or not. The API's bodies are small JSON documents (the audio goes straight
to storage through presigned URLs), so this middleware:

- refuses a declared `Content-Length` over the limit with a 413 before reading a byte of it;
- reads a body without one (chunked) only up to the limit, then answers 413 and stops reading;
- hands the app the buffered body otherwise, so routes read it as usual.

The 413 is the one error shape (`TOO_LARGE`, `details.max_bytes`). Routes with a larger body of
their own (`POST /events/r2`, a batch of R2 notifications) get their own limit.
"""

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from endpoints.errors import error_response

# JSON bodies here are a few hundred bytes; this leaves room for any of them with a margin.
MAX_JSON_BODY_BYTES = 64 * 1024


class BodyLimit:
    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: the app hears of it as it would have
            size += len(message.get("body", b""))
            if size > limit:
                await _too_large(limit)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(messages, receive), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None  # the server refuses a bad one
    return None


def _too_large(limit: int) -> Any:
    return error_response(
        413,
        "TOO_LARGE",
        f"The request body is too large (at most {limit} bytes).",
        {"max_bytes": limit},
        headers={"Connection": "close"},  # the unread rest of the body cannot be skipped
    )


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """The body already read, then whatever the connection says next (a disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
