"""A conversion whose upload event was lost still starts: the reconciler looks for it.

Found while checking what the fault harness's `relay_down` can cost: with the relay stopped,
a dataset upload is probed by the reconciler's next pass, but a conversion's input was never
looked for: the job sat in `awaiting_upload` with its input in the bucket until the reaper
canceled it (`UPLOAD_EXPIRED`) when its upload link ran out, and the person had to start
over.
"""

import pytest

from pipeline import keys
from pipeline.reconcile import reconcile_uploads
from pipeline.repository import Repository
from pipeline.services import Services
from tests.helpers import new_conversion, trained_profile
from tests.test_separation import Recorder

pytestmark = pytest.mark.faults


def test_an_uploaded_input_without_an_event_is_queued(services: Services, repo, alice, bob) -> None:
    voice = trained_profile(repo, alice.id, "lost event")
    uploaded = new_conversion(repo, alice.id, voice["profile_id"])
    other = trained_profile(repo, bob.id, "no upload")
    never = new_conversion(repo, bob.id, other["profile_id"])
    key = keys.conversion_input_key(alice.id, voice["profile_id"], uploaded, "wav")
    services.storage._s3.put_object(Bucket=services.storage.bucket, Key=key, Body=b"RIFF" * 25)

    eager = Repository(repo.db, repo.settings.model_copy(update={"reconcile_after_seconds": 0}))
    gpu = Recorder()
    report = reconcile_uploads(eager, services.storage, gpu)

    assert str(uploaded) in report.queued
    assert ("convert", uploaded) in gpu.spawned
    assert repo.get_job_by_id("conversion", uploaded).status == "queued"
    assert repo.get_job_by_id("conversion", never).status == "awaiting_upload"  # still waiting
    # once more: nothing is queued or launched twice
    again = reconcile_uploads(eager, services.storage, gpu)
    assert str(uploaded) not in again.queued
    assert gpu.spawned.count(("convert", uploaded)) == 1
