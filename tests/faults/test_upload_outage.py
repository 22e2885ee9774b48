"""A worker's upload rides out a short object-store outage instead of failing its job.

Found by reading what the fault harness's `s3_restart` aims at (a worker in its `upload`
phase): boto3's own retries (three, within a second or two) were all a worker had, so an R2
incident of a few seconds while a trained model went up failed the training (`INTERNAL`)
after all its GPU time, leaving the half that was uploaded as an orphan for retention.
`Storage.upload_file` now keeps trying for `VC_UPLOAD_PATIENCE_SECONDS`.
"""

import threading
import time
from pathlib import Path

import pytest

from pipeline.storage import Storage
from tests.faults.stack import ChaosStack

pytestmark = pytest.mark.faults


def test_an_upload_during_a_store_restart_lands(own_storage: ChaosStack, tmp_path: Path) -> None:
    storage = Storage(own_storage.settings(upload_patience_seconds=120))
    weights = tmp_path / "model.pth"
    weights.write_bytes(b"\x01" * 300_000)
    key = f"vc/outage/{time.monotonic_ns()}/model.pth"

    own_storage.stop_storage()
    back = threading.Timer(6, own_storage.restart_storage)
    back.start()
    try:
        storage.upload_file(weights, key, "application/octet-stream")
    finally:
        back.join()
    info = storage.head(key)
    assert info is not None and info.size == 300_000


@pytest.mark.timeout(90)
def test_a_refused_upload_is_not_tried_again(own_storage: ChaosStack, tmp_path: Path) -> None:
    """A 4xx is the request's fault: waiting out the patience would only delay the failure."""
    storage = Storage(own_storage.settings(upload_patience_seconds=3600, s3_access_key_id="nobody"))
    path = tmp_path / "out.wav"
    path.write_bytes(b"RIFF")
    with pytest.raises(Exception, match=r"InvalidAccessKeyId|403"):
        storage.upload_file(path, "vc/refused.wav", "audio/wav")
