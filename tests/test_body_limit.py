"""Every route's body is capped before it is read, signed in or not: FastAPI parses a JSON body
before it runs the auth dependency, so without the cap anyone could make the API buffer and
parse as much as they send. A declared oversize body is refused from its Content-Length before
a byte is read, a stream without one is cut at the cap, and a normal body still arrives."""

import httpx

from endpoints.body_limit import MAX_JSON_BODY_BYTES
from tests.test_event_body_cap import _raw_request


def test_an_oversize_content_length_on_a_json_route_is_refused_before_the_body(api_url) -> None:
    """Old code waited for all 64 MiB (this read timed out): the body was read before auth."""
    head = (
        "POST /profiles HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Content-Length: {64 * 1024 * 1024}\r\n\r\n"
    )
    answer = _raw_request(api_url, head, b'{"name": "')
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_an_unauthenticated_stream_is_cut_at_the_cap_with_the_error_shape(api_url) -> None:
    """Old code read the whole stream, parsed it, then answered 401."""

    def endless():
        yield b'{"name": "'
        for _ in range(64):
            yield b"x" * 65536

    response = httpx.post(
        f"{api_url}/profiles",
        content=endless(),
        headers={"Content-Type": "application/json", "Origin": "http://127.0.0.1:3000"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "TOO_LARGE"
    assert error["details"]["max_bytes"] == MAX_JSON_BODY_BYTES


def test_a_body_under_the_cap_reaches_the_route(alice) -> None:
    name = "a" * 60
    created = alice.client.post("/profiles", json={"name": name, "description": "d" * 1000})
    assert created.status_code in (201, 422), created.text  # the route read and judged it
    streamed = alice.client.post(
        "/profiles",
        content=iter([b'{"name": ', b'"streamed"}']),
        headers={"Content-Type": "application/json"},
    )
    assert streamed.status_code == 201, streamed.text
    assert streamed.json()["name"] == "streamed"
