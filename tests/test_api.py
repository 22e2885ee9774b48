"""The API end to end over real HTTP, with uploads going to the real S3 server."""

from uuid import uuid4

import httpx

from pipeline import keys
from tests.helpers import trained_profile


def _upload_ticket(user, profile_id, **overrides):
    body = {"filename": "take one.wav", "content_type": "audio/wav", "size_bytes": 5} | overrides
    return user.client.post(f"/profiles/{profile_id}/dataset/uploads", json=body)


def test_health(api_url) -> None:
    response = httpx.get(f"{api_url}/health")
    assert response.json() == {"status": "ok", "database": True, "storage": True}


def test_limits_are_public_and_follow_settings(api_url, settings) -> None:
    limits = httpx.get(f"{api_url}/limits").json()
    assert limits["min_dataset_seconds"] == settings.min_dataset_seconds == 20
    assert limits["max_dataset_seconds"] == settings.max_dataset_seconds
    assert limits["allowed_formats"] == ["wav", "flac", "mp3"]
    assert "webhook_secret" not in limits and "database_url" not in limits


def test_profile_upload_flow(alice, services) -> None:
    created = alice.client.post("/profiles", json={"name": "  Alto  "})
    assert created.status_code == 201, created.text
    profile = created.json()
    assert profile["name"] == "Alto"
    assert [p["id"] for p in alice.client.get("/profiles").json()] == [profile["id"]]

    ticket = _upload_ticket(alice, profile["id"])
    assert ticket.status_code == 201, ticket.text
    t = ticket.json()
    assert t["object_key"].startswith(f"vc/users/{alice.id}/profiles/{profile['id']}/dataset/")
    assert t["object_key"].endswith("/take_one.wav")

    put = httpx.put(t["upload_url"], content=b"RIFF!", headers=t["headers"])
    assert put.status_code == 200, put.text
    head = services.storage.head(t["object_key"])
    assert head is not None and head.size == 5

    files = alice.client.get(f"/profiles/{profile['id']}/dataset/files").json()
    assert [(f["id"], f["status"], f["filename"]) for f in files] == [
        (t["file_id"], "pending", "take one.wav")
    ]
    detail = alice.client.get(f"/profiles/{profile['id']}").json()
    assert detail["dataset"]["pending_files"] == 1

    deleted = alice.client.delete(f"/profiles/{profile['id']}/dataset/files/{t['file_id']}")
    assert deleted.json()["status"] == "deleted"
    assert services.storage.head(t["object_key"]) is None
    assert alice.client.get(f"/profiles/{profile['id']}/dataset/files").json() == []


def test_store_refuses_a_put_that_differs_from_the_signed_one(alice) -> None:
    profile = alice.client.post("/profiles", json={"name": "strict"}).json()
    t = _upload_ticket(alice, profile["id"]).json()
    wrong_type = httpx.put(
        t["upload_url"], content=b"RIFF!", headers={"Content-Type": "audio/mpeg"}
    )
    wrong_length = httpx.put(t["upload_url"], content=b"RIFF!!", headers=t["headers"])
    tampered = httpx.put(t["upload_url"].replace("dataset", "datasex"), content=b"RIFF!")
    assert wrong_type.status_code == 403
    assert wrong_length.status_code == 403
    assert tampered.status_code == 403


def test_other_users_get_404_for_everything(alice, bob, repo) -> None:
    made = trained_profile(repo, alice.id)
    pid, job_id = made["profile_id"], made["job_id"]
    t = _upload_ticket(alice, pid).json()
    for method, path in [
        ("GET", f"/profiles/{pid}"),
        ("DELETE", f"/profiles/{pid}"),
        ("GET", f"/profiles/{pid}/dataset/files"),
        ("DELETE", f"/profiles/{pid}/dataset/files/{t['file_id']}"),
        ("GET", f"/trainings/{job_id}"),
        ("GET", f"/profiles/{pid}/trainings"),
        ("GET", f"/profiles/{pid}/conversions"),
        ("GET", f"/profiles/{uuid4()}"),
    ]:
        response = bob.client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "NOT_FOUND"
    refused = _upload_ticket(bob, pid)
    assert refused.status_code == 404
    # And alice still has everything.
    assert alice.client.get(f"/trainings/{job_id}").json()["status"] == "succeeded"
    assert len(alice.client.get(f"/profiles/{pid}/dataset/files").json()) == 2


def test_quota_endpoint(alice) -> None:
    quota = alice.client.get("/quota").json()
    assert quota["training"]["remaining"] == 3
    assert quota["conversion"]["limit"] == 3
    assert quota["training"]["resets_at"].endswith("Z")


def test_profile_rules(alice) -> None:
    assert alice.client.post("/profiles", json={"name": "dup"}).status_code == 201
    again = alice.client.post("/profiles", json={"name": "DUP "})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "PROFILE_NAME_TAKEN"
    pid = alice.client.get("/profiles").json()[0]["id"]
    assert alice.client.delete(f"/profiles/{pid}").status_code == 200
    assert alice.client.get(f"/profiles/{pid}").status_code == 404
    assert alice.client.post("/profiles", json={"name": "dup"}).status_code == 201


def test_cors_preflight_allows_the_configured_origin(api_url, settings) -> None:
    origin = settings.cors_origins[0]
    response = httpx.options(
        f"{api_url}/profiles",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.headers["access-control-allow-origin"] == origin
    other = httpx.options(
        f"{api_url}/profiles",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers


def test_a_model_versions_preview_is_its_owners_and_404_when_absent(alice, bob, repo, services):
    made = trained_profile(repo, alice.id)
    pid, version = made["profile_id"], made["model_version_id"]
    path = f"/models/{version}/preview"
    missing = alice.client.get(path)
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    storage = services.storage
    for side in ("original", "converted"):
        key = keys.model_preview_key(alice.id, pid, version, side)
        storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=f"RIFF-{side}".encode())
    found = alice.client.get(path)
    assert found.status_code == 200, found.text
    links = found.json()
    assert httpx.get(links["original_url"]).content == b"RIFF-original"
    assert httpx.get(links["converted_url"]).content == b"RIFF-converted"
    assert links["expires_in"] == services.settings.download_url_seconds
    refused = bob.client.get(path)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "NOT_FOUND"
    assert alice.client.get(f"/models/{uuid4()}/preview").status_code == 404
