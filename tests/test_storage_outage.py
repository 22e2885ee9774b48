"""An object-store outage is a 503 with Retry-After on every route that lists or deletes
objects, never a 500: `Storage.list_prefix` and `Storage.delete_many` raise `Unavailable`
as `head` does. The store here is a real SeaweedFS of this module's own, stopped for real
(the fault harness's `ChaosStack`), behind the real API over HTTP."""

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from uuid import uuid4

import httpx
import pytest

from endpoints.app import create_app
from pipeline import keys
from pipeline.errors import Unavailable
from pipeline.instant import InstantCalls
from pipeline.local.issuer import ThreadedServer
from pipeline.local.seaweed import free_port
from pipeline.storage import Storage
from tests.faults.stack import ChaosStack, wait_for
from tests.test_erasure import ERASE


@pytest.fixture(scope="module")
def own_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    """A SeaweedFS to stop (as tests/faults/conftest.py's `own_storage`, which only the fault
    tests see)."""
    stack = ChaosStack.create(tmp_path_factory.mktemp("outage-s3"))
    stack.start_storage()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def api(services, own_storage: ChaosStack) -> Iterator[tuple[str, Storage]]:
    """The API with the session's database and the stoppable store."""
    store = Storage(own_storage.settings())
    with_store = replace(services, storage=store)
    with_store.dispatcher, with_store.events = services.dispatcher, services.events
    server = ThreadedServer(create_app(services=with_store), free_port())
    server.start()
    try:
        yield server.url, store
    finally:
        server.stop()


def _call(url: str, user, method: str, path: str, **kwargs) -> httpx.Response:
    headers = {"Authorization": user.client.headers["Authorization"]}
    return httpx.request(method, f"{url}{path}", headers=headers, timeout=120, **kwargs)


def _answers(store: Storage) -> bool:
    try:
        return store.ping()
    except Exception:
        return False


def _is_outage(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


def test_listing_and_deleting_during_an_outage_are_503s_or_queued(
    services, own_storage: ChaosStack, api, alice
) -> None:
    url, store = api
    repo = services.repo
    profile = repo.create_profile(alice.id, "outage")
    voice_id = uuid4()
    reference = keys.instant_reference_key(alice.id, profile.id, voice_id, "wav")
    InstantCalls(repo).create_voice(
        user_id=alice.id, profile_id=profile.id, voice_id=voice_id, name="me",
        reference_key=reference, filename="me.wav", size_bytes=4,
        consent_text="mine", upload_expires_at=datetime.now(UTC),
    )  # fmt: skip
    store._s3.put_object(Bucket=store.bucket, Key=reference, Body=b"RIFF")
    prefix = f"{keys.ROOT}/{alice.id}/"
    assert [o.key for o in store.list_prefix(prefix)] == [reference]

    own_storage.stop_storage()
    try:
        with pytest.raises(Unavailable):
            list(store.list_prefix(prefix))
        with pytest.raises(Unavailable):
            store.delete_many([reference])
        # The voice's rows go, its objects queued with them for the deletion task: the
        # delete is done (a 503 would have sent the person to retry into a 404).
        deleted = _call(url, alice, "DELETE", f"/instant/voices/{voice_id}")
        assert deleted.status_code == 204, deleted.text
        assert _call(url, alice, "GET", f"/instant/voices/{voice_id}").status_code == 404
        _is_outage(_call(url, alice, "DELETE", "/me", json=ERASE))
    finally:
        own_storage.restart_storage()

    assert wait_for(lambda: _answers(store), 60), "the store came back"
    retried = _call(url, alice, "DELETE", "/me", json=ERASE)
    assert retried.status_code == 200, retried.text
    assert list(store.list_prefix(prefix)) == []
