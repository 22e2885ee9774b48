"""The routes every job kind shares, built from a short description of the kind.

A job resource answers the same questions whatever its work is: its jobs under a profile
(`GET /profiles/{profile_id}/<kind>s`), one job (`GET /<kind>s/{job_id}`), cancel it
(`POST /<kind>s/{job_id}/cancel`) and, where the kind allows, try it again
(`POST /<kind>s/{job_id}/retry`). Written once here, they check the same things and carry the
same OpenAPI for every kind (response model, rate limit, error statuses, and the operation
names `list_<kind>s`, `get_<kind>`, `cancel_<kind>`, `retry_<kind>` that FastAPI makes the
operation ids and summaries of); a router keeps only what is its own, such as how a job
starts and what it lets you download.

By default a route calls the shared job machine for the kind (`Repository.get_job`,
`Repository.list_jobs`, and `pipeline.launch.cancel`, which cancels in SQL and then stops the
worker); retry has no default, as each kind says how its job starts again. A kind's router
(`endpoints/routers/widgets.py`, added to `endpoints/app.py`):

    router = APIRouter(tags=["widgets"])

    @router.post("/profiles/{profile_id}/widgets", status_code=202,
                 dependencies=[rate_limit("job_start")])
    def start_widget(profile_id: UUID, body: WidgetParams, user: UserDep,
                     services: ServicesDep) -> WidgetJob:
        ...  # what only this kind does: queue it in SQL, then `launch` its worker

    add_job_routes(router, JobResource("widget", WidgetJob, retry=JobRoute(_retry)))

`JobRoute(call, description)` replaces a route's call or documents it; a route set to `None`
is not offered; `plural` names the collection when `<kind>s` is not the word. cancel and
retry answer the job as it is afterwards, read with the resource's get, so what their calls
return is not sent.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel

from endpoints.deps import ServicesDep, UserAction, UserDep, rate_limit
from endpoints.openapi import may_answer
from pipeline.launch import cancel
from pipeline.services import Services
from schemas.jobs import JobKind

# (services, user id, job id): act on or read the caller's job; NOT_FOUND when not theirs.
JobCall = Callable[[Services, UUID, UUID], Any]
# (services, user id, profile id, limit): the profile's jobs, newest first.
ListCall = Callable[[Services, UUID, UUID, int], list[Any]]


@dataclass(frozen=True)
class JobRoute:
    """One shared route of a resource: what it calls (None: the shared job machine's), the
    description its operation shows, and its operation name when not the usual one."""

    call: Callable[..., Any] | None = None
    description: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class JobResource:
    """A job kind as the API shows it: `kind` names its jobs in the repository and its
    operations, `model` is what a client sees of one job; a route set to None is not offered."""

    kind: str
    model: type[BaseModel]
    listing: JobRoute | None = JobRoute()
    get: JobRoute = JobRoute()
    cancel: JobRoute | None = JobRoute()
    retry: JobRoute | None = None
    plural: str = ""  # when `<kind>s` is not the word

    @property
    def collection(self) -> str:
        """The path segment, the router's module and its tag: `trainings`."""
        return self.plural or f"{self.kind}s"


def add_job_routes(router: APIRouter, resource: JobResource) -> None:
    """Adds the resource's shared routes to its router, whose tag they carry, in the order
    list, get, cancel, retry, where the router calls this (so its own routes keep their place
    in the document)."""
    kind, plural, model = resource.kind, resource.collection, resource.model
    job_kind = cast(JobKind, kind)  # a throwaway kind in a test passes all its calls
    get: JobCall = resource.get.call or (lambda s, u, j: s.repo.get_job(job_kind, u, j))

    def add(route: JobRoute, name: str, path: str, endpoint: Callable[..., Any], **kw: Any) -> None:
        router.add_api_route(
            path, endpoint, name=route.name or name, description=route.description, **kw
        )

    # No docstrings on the endpoints below: FastAPI would publish them as descriptions.
    if resource.listing is not None:
        listing: ListCall = resource.listing.call or (
            lambda s, u, p, limit: s.repo.list_jobs(job_kind, u, p, limit)
        )

        def list_jobs(
            profile_id: UUID,
            user: UserDep,
            services: ServicesDep,
            limit: int = Query(50, ge=1, le=200),
        ) -> Any:
            services.repo.get_profile(user.id, profile_id)  # a stranger's profile: 404
            return listing(services, user.id, profile_id, limit)

        path = f"/profiles/{{profile_id}}/{plural}"
        add(resource.listing, f"list_{plural}", path, list_jobs, response_model=list[model])

    def get_job(job_id: UUID, user: UserDep, services: ServicesDep) -> Any:
        return get(services, user.id, job_id)

    add(resource.get, f"get_{kind}", f"/{plural}/{{job_id}}", get_job, response_model=model)

    def change(verb: str, route: JobRoute, call: JobCall, rate: UserAction, *also: int) -> None:
        """A POST that acts on the job, then answers the job as it then is."""

        def change_job(job_id: UUID, user: UserDep, services: ServicesDep) -> Any:
            call(services, user.id, job_id)
            return get(services, user.id, job_id)

        add(
            route,
            f"{verb}_{kind}",
            f"/{plural}/{{job_id}}/{verb}",
            may_answer(change_job, *also),
            response_model=model,
            methods=["POST"],
            dependencies=[rate_limit(rate)],
        )

    def cancel_job(s: Services, user_id: UUID, job_id: UUID) -> None:
        cancel(s.repo, s.dispatcher, job_kind, user_id, job_id)  # in SQL, then the worker

    if resource.cancel is not None:
        change("cancel", resource.cancel, resource.cancel.call or cancel_job, "cancel")
    if resource.retry is not None:
        if resource.retry.call is None:
            raise ValueError(f"{kind}: retry has no shared default; give its call")
        # Refused by the job's state (409), or by the quota or the GPU budget (429).
        change("retry", resource.retry, resource.retry.call, "job_start", 409, 429)
