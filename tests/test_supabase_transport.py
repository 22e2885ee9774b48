"""The `supabase` transport against a fake of PostgREST's documented rpc endpoint:
`POST {url}/rest/v1/rpc/{fn}` with the service key as `apikey` and bearer token."""

import json
from uuid import uuid4

import httpx
import pytest
import respx

from pipeline.db import SupabaseDatabase
from pipeline.errors import PipelineError, Unavailable

URL = "https://project-ref.supabase.co"
KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"


@pytest.fixture
def db() -> SupabaseDatabase:
    return SupabaseDatabase(URL, KEY)


@respx.mock
def test_rpc_request_shape_and_result(db) -> None:
    user = uuid4()
    route = respx.post(f"{URL}/rest/v1/rpc/quota_status").mock(
        return_value=httpx.Response(200, json={"training": {"used": 1}})
    )
    result = db.call("quota_status", user_id=user, trainings_per_month=3, conversions_per_day=3)
    assert result == {"training": {"used": 1}}
    request = route.calls.last.request
    assert json.loads(request.content) == {
        "p_user_id": str(user),
        "p_trainings_per_month": 3,
        "p_conversions_per_day": 3,
    }
    assert request.headers["apikey"] == KEY
    assert request.headers["authorization"] == f"Bearer {KEY}"


@respx.mock
def test_domain_errors_map_like_the_postgres_transport(db) -> None:
    respx.post(f"{URL}/rest/v1/rpc/start_training").mock(
        return_value=httpx.Response(
            400,
            json={
                "code": "P0001",
                "message": "QUOTA_EXCEEDED",
                "hint": "You have used all 3 trainings this month.",
                "details": json.dumps({"remaining": 0, "resets_at": "2026-12-01T00:00:00Z"}),
            },
        )
    )
    with pytest.raises(PipelineError) as caught:
        db.call("start_training", user_id=uuid4())
    assert caught.value.code == "QUOTA_EXCEEDED"
    assert caught.value.message.startswith("You have used all 3")
    assert caught.value.details == {"remaining": 0, "resets_at": "2026-12-01T00:00:00Z"}


@respx.mock
def test_other_failures_are_unavailable(db) -> None:
    respx.post(f"{URL}/rest/v1/rpc/health").mock(
        return_value=httpx.Response(
            404, json={"code": "PGRST202", "message": "Could not find the function"}
        )
    )
    with pytest.raises(Unavailable):
        db.call("health")
    respx.post(f"{URL}/rest/v1/rpc/list_profiles").mock(side_effect=httpx.ConnectError("down"))
    with pytest.raises(Unavailable):
        db.call("list_profiles", user_id=uuid4())


def test_function_names_are_checked(db) -> None:
    with pytest.raises(ValueError, match="not a SQL function name"):
        db.call("x; drop table y")
