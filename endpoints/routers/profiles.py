"""`/profiles`: create, list, read and delete voice profiles."""

from uuid import UUID

from fastapi import APIRouter, status

from endpoints.deps import RepoDep, UserDep
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
def delete_profile(profile_id: UUID, user: UserDep, repo: RepoDep) -> Profile:
    """Hidden at once; after `VC_DELETED_PROFILE_GRACE_DAYS` the retention task deletes its
    dataset, models and conversions from storage and purges its rows."""
    return repo.delete_profile(user.id, profile_id)
