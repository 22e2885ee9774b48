"""A job kind's shared routes come from its description alone (endpoints/job_routes.py).

A throwaway kind, `gadget`, keeps its jobs in a dict of its own; the factory gives it the
list, get, cancel and retry routes of every kind, served by the real app (real auth, rate
limits in the database, the error shape, the OpenAPI contract) over real HTTP.
"""

from collections.abc import Iterator
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import APIRouter

from endpoints.app import create_app
from endpoints.job_routes import JobResource, JobRoute, add_job_routes
from pipeline.errors import NotFound, PipelineError
from pipeline.local.issuer import ThreadedServer
from pipeline.local.seaweed import free_port
from pipeline.services import Services
from schemas.common import Model


class Gadget(Model):
    id: UUID
    profile_id: UUID
    status: str


GADGETS: dict[UUID, tuple[UUID, Gadget]] = {}  # job id: (owner, job)


def _get(services: Services, user_id: UUID, job_id: UUID) -> Gadget:
    owner, job = GADGETS.get(job_id, (None, None))
    if owner != user_id or job is None:
        raise NotFound("No such gadget.", {"job_id": str(job_id)})
    return job


def _list(services: Services, user_id: UUID, profile_id: UUID, limit: int) -> list[Gadget]:
    jobs = [
        job for owner, job in GADGETS.values() if (owner, job.profile_id) == (user_id, profile_id)
    ]
    return jobs[:limit]


def _set(services: Services, user_id: UUID, job_id: UUID, status: str) -> None:
    job = _get(services, user_id, job_id)
    GADGETS[job_id] = (user_id, job.model_copy(update={"status": status}))


def _cancel(services: Services, user_id: UUID, job_id: UUID) -> None:
    _set(services, user_id, job_id, "canceled")


def _retry(services: Services, user_id: UUID, job_id: UUID) -> None:
    status = _get(services, user_id, job_id).status
    if status not in {"failed", "canceled"}:
        raise PipelineError("INVALID_TRANSITION", "Only an ended gadget is tried again.", {})
    _set(services, user_id, job_id, "queued")


GADGET = JobResource(
    "gadget",
    Gadget,
    listing=JobRoute(_list),
    get=JobRoute(_get),
    cancel=JobRoute(_cancel, "Stops a gadget."),
    retry=JobRoute(_retry),
)
# Offers one route only, under a collection word of its own.
WIDGET = JobResource(
    "widget", Gadget, get=JobRoute(_get), listing=None, cancel=None, plural="widgetry"
)


@pytest.fixture(scope="module")
def gadgets_url(services: Services) -> Iterator[str]:
    app = create_app(services=services)
    for resource in (GADGET, WIDGET):
        router = APIRouter(tags=[resource.collection])
        add_job_routes(router, resource)
        app.include_router(router)
    server = ThreadedServer(app, free_port()).start()
    yield server.url
    server.stop()


def _client(url: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def test_the_routes_and_their_openapi_follow_from_the_description(gadgets_url) -> None:
    doc = httpx.get(f"{gadgets_url}/openapi.json", timeout=30).json()
    ops = {
        (method, path): op
        for path, methods in doc["paths"].items()
        for method, op in methods.items()
        if "gadget" in path or "widgetry" in path
    }
    assert {(m, p): op["operationId"] for (m, p), op in ops.items()} == {
        ("get", "/profiles/{profile_id}/gadgets"): "list_gadgets_profiles__profile_id__gadgets_get",
        ("get", "/gadgets/{job_id}"): "get_gadget_gadgets__job_id__get",
        ("post", "/gadgets/{job_id}/cancel"): "cancel_gadget_gadgets__job_id__cancel_post",
        ("post", "/gadgets/{job_id}/retry"): "retry_gadget_gadgets__job_id__retry_post",
        ("get", "/widgetry/{job_id}"): "get_widget_widgetry__job_id__get",
    }
    one = {"$ref": "#/components/schemas/Gadget"}
    listing = ops["get", "/profiles/{profile_id}/gadgets"]
    success = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert success["items"] == one
    assert success["type"] == "array"
    assert {p["name"] for p in listing["parameters"]} == {"profile_id", "limit"}
    get, cancel = ops["get", "/gadgets/{job_id}"], ops["post", "/gadgets/{job_id}/cancel"]
    retry = ops["post", "/gadgets/{job_id}/retry"]
    for op in (get, cancel, retry):
        assert op["responses"]["200"]["content"]["application/json"]["schema"] == one
        assert op["tags"] == ["gadgets"]
    assert get["summary"] == "Get Gadget"
    assert "description" not in get
    assert cancel["description"] == "Stops a gadget."
    errors = {"401", "403", "404", "422", "503"}
    assert set(get["responses"]) == {"200"} | errors
    assert set(cancel["responses"]) == {"200", "429"} | errors  # its rate limit
    assert set(retry["responses"]) == {"200", "409", "429"} | errors  # state; start limit
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    assert retry["responses"]["409"]["content"]["application/json"]["schema"] == error_body
    assert "Retry-After" in retry["responses"]["429"]["headers"]


def test_a_kind_gets_list_get_cancel_and_retry_over_http(gadgets_url, services, alice, bob) -> None:
    profile = services.repo.create_profile(alice.id, f"gadgets-{uuid4().hex[:6]}")
    job_id = uuid4()
    GADGETS[job_id] = (alice.id, Gadget(id=job_id, profile_id=profile.id, status="running"))
    with _client(gadgets_url, alice.token) as a, _client(gadgets_url, bob.token) as b:
        listed = a.get(f"/profiles/{profile.id}/gadgets")
        assert listed.status_code == 200, listed.text
        assert [j["id"] for j in listed.json()] == [str(job_id)]
        assert a.get(f"/gadgets/{job_id}").json()["status"] == "running"

        refused = a.post(f"/gadgets/{job_id}/retry")  # still running
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "INVALID_TRANSITION"
        canceled = a.post(f"/gadgets/{job_id}/cancel")
        assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")
        retried = a.post(f"/gadgets/{job_id}/retry")
        assert (retried.status_code, retried.json()["status"]) == (200, "queued")

        # Someone else's profile or job is not found, and the job is left as it was.
        assert b.get(f"/profiles/{profile.id}/gadgets").status_code == 404
        for answer in (b.get(f"/gadgets/{job_id}"), b.post(f"/gadgets/{job_id}/cancel")):
            assert answer.json()["error"]["code"] == "NOT_FOUND"
        assert a.get(f"/gadgets/{job_id}").json()["status"] == "queued"

        too_many = a.get(f"/profiles/{profile.id}/gadgets", params={"limit": 0})
        assert too_many.json()["error"]["code"] == "VALIDATION_FAILED"
    with _client(gadgets_url, None) as anonymous:
        assert anonymous.get(f"/gadgets/{job_id}").status_code == 401


def test_a_route_set_to_none_is_not_served(gadgets_url, alice) -> None:
    job_id = uuid4()
    GADGETS[job_id] = (alice.id, Gadget(id=job_id, profile_id=uuid4(), status="running"))
    with _client(gadgets_url, alice.token) as a:
        assert a.get(f"/widgetry/{job_id}").json()["status"] == "running"
        assert a.post(f"/widgetry/{job_id}/cancel").status_code == 404
        assert a.get(f"/profiles/{uuid4()}/widgetry").status_code == 404


def test_retry_needs_a_call_of_the_kind() -> None:
    with pytest.raises(ValueError, match="retry"):
        add_job_routes(APIRouter(), JobResource("gadget", Gadget, retry=JobRoute()))
