"""Timbre retrieval: the fork's k-means cluster model trained on the training pieces only,
read back by our loader where the fork's own is broken (torch ≥ 2.6), refused when it is not
a cluster model, and carried by the model version: its key, its default ratio, its download,
its deletion, and `cluster_ratio` open on conversions (0 to 1, 422 outside)."""

import json
import pickle
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch

from gpu.conversion.retrieval import load_cluster, ratio_for
from gpu.training import cluster
from pipeline import keys
from schemas.jobs import ConversionParams
from tests.helpers import ready_dataset
from tests.test_retention import put

HOP, DIM = 512, 16


def _fake_training(tmp_path: Path, pieces: int = 6, held_out: int = 2) -> Path:
    """The fork's layout with features: training pieces' content near 0, held-out pieces'
    near 100, so a centre made from a held-out piece would show."""
    speaker = tmp_path / "dataset" / "44k" / "voice"
    speaker.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lists: dict[str, list[str]] = {"train": [], "val": []}
    for i in range(pieces + held_out):
        wav = speaker / f"piece{i}.wav"
        sf.write(wav, np.zeros(HOP * 200, np.float32), 44100)
        base = 0.0 if i < pieces else 100.0
        content = base + rng.normal(size=(1, DIM, 200)).astype(np.float32)
        torch.save({"content": torch.from_numpy(content)}, speaker / f"piece{i}.wav.data.pt")
        lists["train" if i < pieces else "val"].append(str(wav))
    for name, listed in lists.items():
        (tmp_path / f"{name}.txt").write_text("\n".join(listed) + "\n")
    config = {
        "data": {
            "hop_length": HOP,
            "training_files": str(tmp_path / "train.txt"),
            "validation_files": str(tmp_path / "val.txt"),
        }
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_clusters_the_training_pieces_in_the_forks_format_and_we_read_it(tmp_path) -> None:
    config = _fake_training(tmp_path)
    out = tmp_path / "out" / "cluster.pt"
    found = cluster.train(config, out)
    assert found["frames"] == 6 * 200 and found["clusters"] == cluster.clusters_for(1200) == 40

    models = load_cluster(out)
    assert list(models) == ["voice"]
    centres = models["voice"].cluster_centers_
    assert centres.shape == (40, DIM) and centres.dtype == np.float32
    assert np.abs(centres).max() < 50, "no centre comes from a held-out piece"
    # what the fork's Svc calls at conversion time works on what we loaded
    from so_vits_svc_fork.cluster import get_cluster_center_result

    frames = np.random.default_rng(1).normal(size=(30, DIM)).astype(np.float32)
    assert get_cluster_center_result(models, frames, "voice").shape == (30, DIM)


def test_the_forks_own_loader_refuses_the_file_on_this_torch(tmp_path) -> None:
    """Why we load it ourselves: torch ≥ 2.6 loads with
    `weights_only=True` by default and the file holds numpy arrays."""
    from so_vits_svc_fork.cluster import get_cluster_model

    out = tmp_path / "cluster.pt"
    cluster.train(_fake_training(tmp_path), out)
    with pytest.raises(pickle.UnpicklingError):
        get_cluster_model(out)


class _Runs:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def test_a_file_that_is_not_a_cluster_model_is_refused(tmp_path) -> None:
    hostile = tmp_path / "hostile.pt"
    torch.save({"voice": _Runs()}, hostile)
    with pytest.raises(pickle.UnpicklingError):
        load_cluster(hostile)
    wrong = tmp_path / "wrong.pt"
    torch.save({"voice": {"n_features_in_": 3, "cluster_centers_": np.zeros((4, 2))}}, wrong)
    with pytest.raises(ValueError, match="mismatched"):
        load_cluster(wrong)
    with pytest.raises(ValueError, match="no cluster model"):
        torch.save({}, wrong)
        load_cluster(wrong)


def test_the_ratio_a_conversion_runs_at() -> None:
    with_cluster = SimpleNamespace(cluster_model={"voice": object()}, default_cluster_ratio=0.5)
    without = SimpleNamespace(cluster_model=None)
    assert ratio_for(with_cluster, ConversionParams()) == 0.5  # the version's default
    assert ratio_for(with_cluster, ConversionParams(cluster_ratio=0.0)) == 0.0
    assert ratio_for(with_cluster, ConversionParams(cluster_ratio=0.8)) == 0.8
    assert ratio_for(without, ConversionParams(cluster_ratio=0.8)) == 0.0
    for bad in (-0.1, 1.01):
        with pytest.raises(ValueError):
            ConversionParams(cluster_ratio=bad)


def _finished_version(repo, user_id, metrics: dict) -> tuple:
    profile = repo.create_profile(user_id, f"voice {uuid4().hex[:6]}")
    ready_dataset(repo, user_id, profile.id, 200)
    job = repo.start_training(user_id, profile.id, {"preset": "tiny"})
    repo.claim_job("training", job.id)
    version = uuid4()
    repo.finish_training(
        job.id,
        version,
        keys.model_key(user_id, profile.id, version),
        keys.model_config_key(user_id, profile.id, version),
        1234,
        metrics,
    )
    return profile.id, version


def test_the_version_carries_its_cluster_model_and_default_ratio(
    repo, alice, sql, services
) -> None:
    metrics = {"retrieval": {"clusters": 40}, "quality": {"cluster_ratio": 0.5}}
    pid, version = _finished_version(repo, alice.id, metrics)
    key = keys.model_cluster_key(alice.id, pid, version)
    row = repo.get_model_version(alice.id, version)
    assert (row.cluster_key, row.cluster_ratio) == (key, 0.5)
    listed = alice.client.get(f"/profiles/{pid}/models").json()[0]
    assert (listed["has_cluster"], listed["cluster_ratio"]) == (True, 0.5)
    assert "cluster_key" not in listed
    put(services.storage, key, b"cluster bytes")
    links = alice.client.get(f"/models/{version}/download").json()
    assert httpx.get(links["cluster_url"]).content == b"cluster bytes"

    # no cluster model (trained before, or it could not be made): none offered, ratio 0
    old_pid, old = _finished_version(repo, alice.id, {"retrieval": None})
    assert alice.client.get(f"/profiles/{old_pid}/models").json()[0]["has_cluster"] is False
    assert alice.client.get(f"/models/{old}/download").json()["cluster_url"] is None

    # the file goes with its version, as a deleted profile's retention or an erasure purges it
    sql.execute("select svc_private.purge_profiles(array[%s]::uuid[], 'profile_deleted')", (pid,))
    queued = sql.execute(
        "select 1 from public.object_deletions where object_key = %s", (key,)
    ).fetchall()
    assert queued, "the cluster file is queued for deletion with its version"


def test_cluster_ratio_is_open_on_conversions_and_422_outside(repo, alice) -> None:
    pid, _ = _finished_version(repo, alice.id, {"retrieval": {"clusters": 40}})
    body = {"filename": "in.wav", "content_type": "audio/wav", "size_bytes": 1000}
    ok = alice.client.post(
        f"/profiles/{pid}/conversions", json=body | {"params": {"cluster_ratio": 0.7}}
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["job"]["params"]["cluster_ratio"] == 0.7
    for bad in (1.5, -0.2):
        refused = alice.client.post(
            f"/profiles/{pid}/conversions", json=body | {"params": {"cluster_ratio": bad}}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"]
