"""The pull consumer against a fake of the documented Queues HTTP API, handling real events
for real uploads: defensive decoding, partial failure, redelivery."""

import base64
import json
from uuid import uuid4

import httpx
import respx

from pipeline import keys
from pipeline.errors import Unavailable
from pipeline.queue_pull import CloudflareQueue, consume_once, decode_body
from schemas.events import R2Event
from tests.audio import encode, voice
from tests.events_helpers import r2_event
from tests.fake_cloudflare_queue import BASE, FakeQueue


def _uploaded(repo, storage, user_id, profile_id, seed: int) -> tuple[str, dict]:
    file_id = uuid4()
    key = keys.dataset_key(user_id, profile_id, file_id, f"{seed}.wav")
    data = encode(voice(3.0, seed=seed), 44100, "wav")
    repo.register_upload(user_id, profile_id, file_id, key, f"{seed}.wav", "audio/wav", len(data))
    etag = storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)["ETag"].strip('"')
    return str(file_id), r2_event(storage.bucket, key, etag, len(data))


def test_decode_body_accepts_object_json_string_and_base64() -> None:
    event = {"a": 1}
    assert decode_body(event) == event
    assert decode_body(json.dumps(event)) == event
    assert decode_body(base64.b64encode(json.dumps(event).encode()).decode()) == event
    for bad in ("not json", None, 5, "!!!"):
        try:
            decode_body(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_partial_failure_and_redelivery(repo, services, alice) -> None:
    profile = repo.create_profile(alice.id, "pull")
    uploads = [_uploaded(repo, services.storage, alice.id, profile.id, s) for s in range(4)]
    fake = FakeQueue()
    fake.send(uploads[0][1])  # an object
    fake.send(json.dumps(uploads[1][1]))  # a JSON string
    fake.send(base64.b64encode(json.dumps(uploads[2][1]).encode()).decode())  # base64 JSON
    fake.send(uploads[3][1])
    fake.send("garbage that is no event")

    handler = services.events
    flaky_key = uploads[3][1]["object"]["key"]
    failures = {"left": 1}

    def handle(event):
        if event.object.key == flaky_key and failures["left"]:
            failures["left"] -= 1
            raise Unavailable("object storage hiccup")
        return handler.handle(event)

    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        queue = CloudflareQueue("acct", "queue", "cf-token", base_url=BASE, client=httpx.Client())
        first = consume_once(queue, handle, batch_size=10, retry_delay_seconds=30)
        assert (first.pulled, first.acked, first.retried, first.invalid) == (5, 4, 1, 1)
        assert fake.ack_requests[-1]["retries"][0]["delay_seconds"] == 30
        assert consume_once(queue, handle).pulled == 0  # the retry waits its delay
        fake.advance(31)
        second = consume_once(queue, handle)
        assert (second.pulled, second.acked) == (1, 1)
        assert fake.messages == {}

    statuses = {repo.get_dataset_file(file_id).status for file_id, _ in uploads}
    assert statuses == {"ready"}


def test_crash_before_ack_redelivers_without_a_second_effect(repo, services, alice) -> None:
    profile = repo.create_profile(alice.id, "crash")
    file_id, event = _uploaded(repo, services.storage, alice.id, profile.id, 9)
    fake = FakeQueue()
    fake.send(event)
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        queue = CloudflareQueue("acct", "queue", "cf-token", base_url=BASE, client=httpx.Client())
        leased = queue.pull(10, visibility_timeout_ms=1000)
        services.events.handle(R2Event.model_validate(leased[0].body))  # then "crashes"
        probed = repo.get_dataset_file(file_id)
        fake.advance(2)  # the lease lapses; Cloudflare redelivers
        report = consume_once(queue, services.events.handle)
        assert [o.outcome for o in report.outcomes] == ["duplicate"]
        assert repo.get_dataset_file(file_id) == probed
        assert fake.messages == {}


def test_wrong_token_is_an_error_not_a_silent_success() -> None:
    fake = FakeQueue()
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        queue = CloudflareQueue("acct", "queue", "wrong", base_url=BASE, client=httpx.Client())
        try:
            queue.pull()
        except httpx.HTTPStatusError as exc:
            assert exc.response.status_code == 403
        else:
            raise AssertionError("pull with a wrong token succeeded")
