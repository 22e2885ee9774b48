"""Rate limits hold across processes because they live in the database: a burst over real HTTP
lets exactly the bucket's size through and answers the rest 429 with Retry-After and the
error body; users have their own buckets; unauthenticated routes are limited per client IP."""

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from endpoints.app import create_app
from pipeline.local.issuer import ThreadedServer
from pipeline.local.seaweed import free_port
from pipeline.services import build_services
from pipeline.settings import Settings

BURST = 5


@pytest.fixture(scope="module")
def strict_url(settings: Settings) -> Iterator[str]:
    """A second API process on the same database with small buckets that barely refill."""
    strict = settings.model_copy(
        update={
            "rate_upload_burst": BURST,
            "rate_upload_per_minute": 0.01,
            "rate_job_start_burst": 2,
            "rate_job_start_per_minute": 0.01,
            "rate_cancel_burst": 3,
            "rate_cancel_per_minute": 0.01,
            "rate_public_burst": BURST,
            "rate_public_per_minute": 0.01,
            "client_ip_header": "X-Test-Client",
        }
    )
    services = build_services(strict)
    server = ThreadedServer(create_app(services=services), free_port()).start()
    yield server.url
    server.stop()
    services.close()


def _client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


UPLOAD = {"filename": "take.wav", "content_type": "audio/wav", "size_bytes": 1000}


def test_an_upload_burst_lets_exactly_the_bucket_through(strict_url, make_user) -> None:
    alice, bob = make_user(), make_user()
    with _client(strict_url, alice.token) as client:
        profile = client.post("/profiles", json={"name": "burst"}).json()
        url = f"/profiles/{profile['id']}/dataset/uploads"
        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(lambda _: client.post(url, json=UPLOAD), range(3 * BURST)))
    statuses = [r.status_code for r in responses]
    allowed, refused = statuses.count(201), statuses.count(429)
    print(f"\nburst of {len(statuses)} upload requests: {allowed} allowed, {refused} refused")
    assert (allowed, refused) == (BURST, 2 * BURST), statuses
    limited = next(r for r in responses if r.status_code == 429)
    error = limited.json()["error"]
    assert error["code"] == "RATE_LIMITED"
    assert "upload" in error["message"]
    assert int(limited.headers["Retry-After"]) >= 1
    assert error["details"]["retry_after"] == int(limited.headers["Retry-After"])
    # Only the allowed requests reserved rows.
    files = alice.client.get(f"/profiles/{profile['id']}/dataset/files").json()
    assert len(files) == BURST
    # Another user has a bucket of their own.
    with _client(strict_url, bob.token) as client:
        other = client.post("/profiles", json={"name": "mine"}).json()
        assert client.post(f"/profiles/{other['id']}/dataset/uploads", json=UPLOAD).is_success


def test_job_starts_and_cancels_are_limited_per_user(strict_url, make_user) -> None:
    alice = make_user()
    with _client(strict_url, alice.token) as client:
        profile = client.post("/profiles", json={"name": "starts"}).json()
        starts = [
            client.post(f"/profiles/{profile['id']}/trainings", json={"preset": "tiny"})
            for _ in range(4)
        ]
        # Refused by the dataset rule while tokens last, then by the limiter.
        assert [r.status_code for r in starts] == [409, 409, 429, 429]
        assert starts[-1].json()["error"]["code"] == "RATE_LIMITED"
        missing = "00000000-0000-4000-8000-000000000000"
        cancels = [client.post(f"/trainings/{missing}/cancel") for _ in range(5)]
        assert [r.status_code for r in cancels] == [404, 404, 404, 429, 429]
        assert "Retry-After" in cancels[-1].headers


def test_a_page_on_another_origin_can_read_retry_after(strict_url, settings) -> None:
    """Retry-After is not a CORS-safelisted header: unless the API exposes it, the page (on its
    own origin) reads null and cannot wait out a 429 before asking again."""
    origin = settings.cors_origins[0]
    headers = {"X-Test-Client": f"198.51.100.{random.randrange(256)}", "Origin": origin}
    answers = [httpx.get(f"{strict_url}/limits", headers=headers) for _ in range(BURST + 1)]
    limited = answers[-1]
    assert limited.status_code == 429
    assert limited.headers["Access-Control-Allow-Origin"] == origin
    exposed = limited.headers.get("Access-Control-Expose-Headers", "")
    assert "retry-after" in exposed.lower(), limited.headers


def test_public_routes_are_limited_per_client_ip(strict_url) -> None:
    def burst(ip: str) -> list[int]:
        headers = {"X-Test-Client": f"10.0.0.9, {ip}"}  # the edge appends the real address
        return [httpx.get(f"{strict_url}/limits", headers=headers).status_code for _ in range(7)]

    first, second = (f"198.51.{random.randrange(256)}.{n}" for n in (1, 2))
    assert burst(first) == [200] * BURST + [429, 429]
    assert burst(second) == [200] * BURST + [429, 429]


@pytest.fixture(scope="module")
def peer_url(settings: Settings) -> Iterator[str]:
    """As on Modal: no client IP header configured. Modal's serving layer puts the caller's
    address in the ASGI scope's `client` and strips any X-Forwarded-For the caller sent."""
    strict = settings.model_copy(
        update={
            "rate_public_burst": BURST,
            "rate_public_per_minute": 0.01,
            "client_ip_header": None,
        }
    )
    services = build_services(strict)
    server = ThreadedServer(create_app(services=services), free_port()).start()
    yield server.url
    server.stop()
    services.close()


def test_without_a_header_each_client_address_has_its_own_bucket(peer_url) -> None:
    """Anonymous callers from two addresses do not share one `ip:` bucket, and a forwarding
    header a caller makes up picks no bucket of its own (a new value per request would)."""

    def burst(source: str) -> list[int]:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, base_url=peer_url) as client:
            return [
                client.get("/limits", headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
                for n in range(7)
            ]

    first, second = (f"127.{random.randrange(1, 255)}.{random.randrange(256)}.{n}" for n in (7, 8))
    assert burst(first) == [200] * BURST + [429, 429]
    assert burst(second) == [200] * BURST + [429, 429]


def test_idle_buckets_are_pruned_by_the_daily_task(repo, sql) -> None:
    subject = f"ip:test-{random.randrange(10**9)}"
    repo.take_rate_token(subject, "public", 5, 1)
    sql.execute(
        "update public.rate_buckets set updated_at = now() - interval '2 days' where subject = %s",
        (subject,),
    )
    assert repo.prune_rate_buckets() >= 1
    assert (
        sql.execute("select 1 from public.rate_buckets where subject = %s", (subject,)).fetchone()
        is None
    )
