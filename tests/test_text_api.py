"""`POST /profiles/{id}/speech` refusing what cannot be spoken, over real HTTP, in the one error
shape, before anything is reserved; the same rules in SQL for a caller that skips the API."""

import pytest

from pipeline.errors import PipelineError


def _profile(user) -> str:
    answer = user.client.post("/profiles", json={"name": "Speaker"})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"text": ""}, "text", "empty"),
        ({"text": "   \n\t "}, "text", "empty"),
        ({"text": "x" * 501}, "text", "at most 500"),
        ({"text": "Hello\x00world"}, "text", "control character"),
        ({"text": "Hello\x1b[31mworld"}, "text", "control character"),
        ({"text": "Hello\u202eworld"}, "text", "control character"),
        ({"text": "Bonjour", "language": "fr"}, "language", "not supported"),
        ({"text": "Hello", "language": "xx-yy"}, "language", "not supported"),
    ],
)
def test_text_that_cannot_be_spoken_is_422(alice, body, field, words) -> None:
    profile = _profile(alice)
    before = alice.client.get("/quota").json()
    answer = alice.client.post(f"/profiles/{profile}/speech", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["details"]["field"] == field
    assert words in error["message"]
    assert alice.client.get("/quota").json() == before
    assert alice.client.get(f"/profiles/{profile}/speech").json() == []


def test_a_malformed_request_is_422_in_the_same_shape(alice) -> None:
    profile = _profile(alice)
    for body in (
        {"text": "hi", "surprise": 1},
        {"text": "hi", "voice": {"kind": "instant"}},
        {"text": 12},
        {"text": "hi", "options": {"pitch": "sideways"}},
    ):
        answer = alice.client.post(f"/profiles/{profile}/speech", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "VALIDATION_FAILED"


def test_a_voice_without_a_model_is_409_and_a_strangers_profile_404(alice, bob) -> None:
    profile = _profile(alice)
    answer = alice.client.post(f"/profiles/{profile}/speech", json={"text": "Hello there."})
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "NO_MODEL"
    answer = bob.client.post(f"/profiles/{profile}/speech", json={"text": "Hello there."})
    assert answer.status_code == 404
    assert alice.client.get("/speech/00000000-0000-4000-8000-000000000000").status_code == 404


def test_sql_refuses_bad_text_from_any_caller(alice, services) -> None:
    """The rules hold in SQL too: a caller that skips the API's checks is refused there."""
    profile = _profile(alice)
    limits = {"max_chars": 500, "default_limit": 5, "max_active": 1}
    from uuid import uuid4

    for text in ("", "a" * 501, "bell\x07"):
        with pytest.raises(PipelineError) as found:
            services.repo.db.call(
                "start_text",
                user_id=alice.id,
                profile_id=profile,
                job_id=uuid4(),
                voice_kind="trained",
                model_version_id=None,
                instant_voice_id=None,
                text=text,
                language="en-us",
                params={},
                **limits,
            )
        assert found.value.code == "INVALID_ARGUMENT"


def test_the_limit_and_the_routes_are_published(api_url, settings) -> None:
    import httpx

    assert httpx.get(f"{api_url}/limits").json()["text_max_chars"] == settings.text_max_chars
    paths = httpx.get(f"{api_url}/openapi.json").json()["paths"]
    start = paths["/profiles/{profile_id}/speech"]["post"]
    assert {"409", "422", "429"} <= set(start["responses"])
    assert "409" in paths["/speech/{job_id}/download"]["get"]["responses"]
    assert {"/speech/{job_id}", "/speech/{job_id}/cancel"} <= set(paths)
