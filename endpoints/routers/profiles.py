"""`/profiles`: create, list, read and delete voice profiles."""

from uuid import UUID

from fastapi import APIRouter, status

from endpoints.deps import RepoDep, ServicesDep, UserDep
from pipeline.launch import signal_stop
from schemas.profiles import Profile, ProfileCreate, ProfileDetail

router = APIRouter(prefix="/profiles", tags=["profiles"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_profile(body: ProfileCreate, user: UserDep, repo: RepoDep) -> Profile:
    return repo.create_profile(user.id, body.name)


@router.get("")
def list_profiles(user: UserDep, repo: RepoDep) -> list[Profile]:
    return repo.list_profiles(user.id)


@router.get("/{profile_id}")
def get_profile(profile_id: UUID, user: UserDep, repo: RepoDep) -> ProfileDetail:
    return repo.get_profile(user.id, profile_id)


@router.delete("/{profile_id}")
def delete_profile(profile_id: UUID, user: UserDep, services: ServicesDep) -> Profile:
    """Hidden at once, and every job on it still live (training, conversion, separation,
    instant, text) is canceled with its refund, as `DELETE /me` cancels them; their workers
    are signaled to stop. After `VC_DELETED_PROFILE_GRACE_DAYS` the retention task deletes
    the rows and objects of every kind and purges the profile."""
    profile, call_ids = services.repo.delete_profile_and_jobs(user.id, profile_id)
    for call_id in call_ids:
        signal_stop(services.dispatcher, call_id)
    return profile
