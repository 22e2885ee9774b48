"""The Cloudflare relay Worker's own code, run by Node's test runner against the real API:
its Ed25519 (WebCrypto) signatures verify here, a tampered body does not, and a real upload
it relays gets probed."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.audio import encode, voice
from tests.events_helpers import r2_event

RELAY = Path(__file__).resolve().parents[1] / "relay"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_worker_against_the_api(api_url, relay_secret_key, services, repo, alice) -> None:
    profile = alice.client.post("/profiles", json={"name": "worker"}).json()
    data = encode(voice(3.0), 44100, "wav")
    body = {"filename": "w.wav", "content_type": "audio/wav", "size_bytes": len(data)}
    t = alice.client.post(f"/profiles/{profile['id']}/dataset/uploads", json=body).json()
    assert httpx.put(t["upload_url"], content=data, headers=t["headers"]).status_code == 200
    info = services.storage.head(t["object_key"])
    event = r2_event(services.settings.s3_bucket, t["object_key"], info.etag, info.size)
    env = os.environ | {
        "PIPELINE_URL": api_url,
        "WEBHOOK_SIGNING_KEY": relay_secret_key,
        "RELAY_TEST_EVENT": json.dumps(event),
    }
    run = subprocess.run(
        ["node", "--test", "test/"], cwd=RELAY, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# pass 4" in run.stdout
    assert repo.get_dataset_file(t["file_id"]).status == "ready"
