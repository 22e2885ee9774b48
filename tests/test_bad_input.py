"""Whatever a client sends, the answer is a 4xx with a clear code, never a 500."""

import pytest


@pytest.fixture
def profile_id(alice) -> str:
    return alice.client.post("/profiles", json={"name": "inputs"}).json()["id"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"filename": "../../etc/passwd.wav"}, 422, "INVALID_FILENAME"),
        ({"filename": "a/b.wav"}, 422, "INVALID_FILENAME"),
        ({"filename": "..\\x.wav"}, 422, "INVALID_FILENAME"),
        ({"filename": ".."}, 422, "INVALID_FILENAME"),
        ({"filename": "bell\x07.wav"}, 422, "INVALID_FILENAME"),
        ({"filename": "null\x00.wav"}, 422, "INVALID_FILENAME"),
        ({"filename": "rtl\u202egnp.wav"}, 422, "INVALID_FILENAME"),
        ({"filename": "x" * 296 + ".wav"}, 422, "INVALID_FILENAME"),
        ({"filename": "   "}, 422, "INVALID_FILENAME"),
        ({"filename": "song.ogg", "content_type": "audio/ogg"}, 415, "UNSUPPORTED_FORMAT"),
        ({"filename": "song", "content_type": "audio/wav"}, 415, "UNSUPPORTED_FORMAT"),
        ({"filename": "song.exe"}, 415, "UNSUPPORTED_FORMAT"),
        ({"filename": "song.wav", "content_type": "text/html"}, 415, "UNSUPPORTED_FORMAT"),
        ({"filename": "song.mp3", "content_type": "audio/wav"}, 415, "UNSUPPORTED_FORMAT"),
        ({"size_bytes": 0}, 422, "INVALID_ARGUMENT"),
        ({"size_bytes": -5}, 422, "INVALID_ARGUMENT"),
        ({"size_bytes": 200 * 1024 * 1024 + 1}, 413, "TOO_LARGE"),
        ({"size_bytes": 10**30}, 413, "TOO_LARGE"),
        ({"size_bytes": "lots"}, 422, "VALIDATION_FAILED"),
        ({"size_bytes": None}, 422, "VALIDATION_FAILED"),
        ({"extra": "field"}, 422, "VALIDATION_FAILED"),
    ],
)
def test_upload_requests_are_checked(alice, profile_id, body, status, code) -> None:
    request = {"filename": "take.wav", "content_type": "audio/wav", "size_bytes": 1000} | body
    response = alice.client.post(f"/profiles/{profile_id}/dataset/uploads", json=request)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_accepted_names_are_stored_as_given_and_keyed_safely(alice, profile_id) -> None:
    body = {
        "filename": "Chœur — take #2 (final).FLAC",
        "content_type": "audio/x-flac",
        "size_bytes": 10,
    }
    ticket = alice.client.post(f"/profiles/{profile_id}/dataset/uploads", json=body)
    assert ticket.status_code == 201, ticket.text
    assert ticket.json()["object_key"].endswith("/Chur_take_2_final.flac")
    files = alice.client.get(f"/profiles/{profile_id}/dataset/files").json()
    assert files[0]["filename"] == body["filename"]
    assert files[0]["content_type"] == "audio/x-flac"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        (
            "POST",
            "/profiles",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
        ),
        ("POST", "/profiles", {"json": {"name": ""}}),
        ("POST", "/profiles", {"json": {"name": "x" * 81}}),
        ("POST", "/profiles", {"json": {"name": "tab\there"}}),
        ("POST", "/profiles", {"json": ["name"]}),
        ("POST", "/profiles", {"json": {"name": 5}}),
        ("GET", "/profiles/not-a-uuid", {}),
        ("GET", "/trainings/1234", {}),
        ("GET", "/profiles/%00", {}),
        ("PUT", "/profiles", {}),
        ("GET", "/nowhere", {}),
        ("GET", "/profiles/00000000-0000-0000-0000-000000000000/trainings?limit=0", {}),
        ("GET", "/profiles/00000000-0000-0000-0000-000000000000/trainings?limit=abc", {}),
    ],
)
def test_malformed_requests_get_4xx_with_error_body(alice, method, path, kwargs) -> None:
    response = alice.client.request(method, path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]


def test_too_many_files_is_a_conflict(alice, profile_id, services, repo) -> None:
    from pipeline.repository import Repository
    from pipeline.uploads import request_dataset_upload
    from schemas.profiles import UploadRequest

    small = Repository(repo.db, repo.settings.model_copy(update={"max_dataset_files": 2}))
    req = UploadRequest(filename="a.wav", content_type="audio/wav", size_bytes=10)
    for _ in range(2):
        request_dataset_upload(small, services.storage, alice.id, profile_id, req)
    with pytest.raises(Exception) as refused:
        request_dataset_upload(small, services.storage, alice.id, profile_id, req)
    assert getattr(refused.value, "code", None) == "TOO_MANY_FILES"
