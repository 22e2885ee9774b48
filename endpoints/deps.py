"""Request dependencies: the process's services and the signed-in user."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.auth import AuthUser
from pipeline.errors import Unauthorized
from pipeline.repository import Repository
from pipeline.services import Services

_bearer = HTTPBearer(auto_error=False)


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_repo(services: Annotated[Services, Depends(get_services)]) -> Repository:
    return services.repo


def current_user(
    services: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AuthUser:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Sign in first: this needs an access token.")
    user = services.verifier.verify(credentials.credentials)
    services.repo.require_enabled_user(user.id)
    return user


ServicesDep = Annotated[Services, Depends(get_services)]
RepoDep = Annotated[Repository, Depends(get_repo)]
UserDep = Annotated[AuthUser, Depends(current_user)]
