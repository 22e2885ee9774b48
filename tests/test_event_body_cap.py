"""`POST /events/r2` never buffers more than its cap: a declared oversize body is refused from
its Content-Length before a byte of it is read, and a stream without one is cut at the cap."""

import socket
from urllib.parse import urlsplit

import httpx


def _raw_request(api_url: str, head: str, body: bytes = b"") -> bytes:
    """Sends the request head (and a little body), then reads what the server answers without
    sending the rest: a server waiting for the declared body would time out here."""
    parts = urlsplit(api_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        sock.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_an_oversize_content_length_is_refused_before_the_body(api_url) -> None:
    declared = 64 * 1024 * 1024
    head = (
        "POST /events/r2 HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    answer = _raw_request(api_url, head, b"[")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_stream_without_a_length_is_cut_at_the_cap(api_url, settings) -> None:
    sent = 0

    def endless():
        nonlocal sent
        chunk = b" " * 65536
        for _ in range(4 * settings.max_event_body_bytes // len(chunk)):
            sent += len(chunk)
            yield chunk

    response = httpx.post(f"{api_url}/events/r2", content=endless(), timeout=30)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "TOO_LARGE"
    assert error["details"]["max_bytes"] == settings.max_event_body_bytes
