"""Training with the real so-vits-svc-fork on a tiny model, on the CPU: end to end through the
API and a worker process, crash and resume, cancel, a dead worker reaped, and refusals."""

import json
import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path
from uuid import UUID

import httpx
import numpy as np
import pytest
import soundfile as sf

from gpu.measures import quality
from gpu.training.trainer import HISTORY_POINTS, ProgressCallback, _intact
from pipeline.repository import Repository
from schemas.quality import QualityReport
from tests.audio import encode, voice
from tests.events_helpers import deliver, r2_event
from tests.helpers import ready_dataset

pytestmark = pytest.mark.slow


def _profile_with_clips(user, services, api_url, relay_secret_key, name: str) -> str:
    """Six synthetic singing clips uploaded through presigned URLs and probed by their events."""
    profile = user.client.post("/profiles", json={"name": name}).json()
    for i in range(6):
        data = encode(voice(5.0, f0=180 + 25 * i, seed=i), 44100, "wav")
        body = {"filename": f"take{i}.wav", "content_type": "audio/wav", "size_bytes": len(data)}
        t = user.client.post(f"/profiles/{profile['id']}/dataset/uploads", json=body).json()
        assert httpx.put(t["upload_url"], content=data, headers=t["headers"]).status_code == 200
        info = services.storage.head(t["object_key"])
        event = r2_event(services.settings.s3_bucket, t["object_key"], info.etag, info.size)
        assert deliver(api_url, relay_secret_key, event).status_code == 200
    files = user.client.get(f"/profiles/{profile['id']}/dataset/files").json()
    assert [f["status"] for f in files] == ["ready"] * 6
    return profile["id"]


def _worker(env: dict[str, str], job_id) -> subprocess.Popen[bytes]:
    log = Path(env["VC_WORK_DIR"]).parent / f"worker-{job_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gpu", "train", str(job_id)],
            env=env,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _log_of(env: dict[str, str], job_id) -> str:
    return (Path(env["VC_WORK_DIR"]).parent / f"worker-{job_id}.log").read_text()[-4000:]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _has_checkpoint(model_dir: Path) -> bool:
    """A whole resume checkpoint (G_n with its D_n, n >= 1) is on disk. Which n is left to
    chance: checkpoints rotate (`keep_ckpts`), so a fast epoch can remove G_1 between polls."""
    return any(
        g.name != "G_0.pth" and _intact(g) and _intact(g.with_name("D" + g.name[1:]))
        for g in model_dir.glob("G_*.pth")
    )


@pytest.mark.timeout(1200)  # its own waits allow a slow shared CPU
def test_train_end_to_end_through_the_api(
    alice, services, api_url, relay_secret_key, worker_env, tmp_path
) -> None:
    pid = _profile_with_clips(alice, services, api_url, relay_secret_key, "e2e")
    started = alice.client.post(f"/profiles/{pid}/trainings", json={"preset": "tiny"})
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    assert started.json()["status"] in {"queued", "running"}

    seen: list[tuple[str, int | None]] = []

    def finished():
        job = alice.client.get(f"/trainings/{job_id}").json()
        seen.append((job["status"], job["progress"].get("step")))
        return job if job["status"] in {"succeeded", "failed", "canceled"} else None

    job = _wait(finished, 600, "training to finish")  # a CPU shared with other runs
    assert job["status"] == "succeeded", job
    statuses = [s for s, _ in seen]
    assert "running" in statuses
    steps = [step for s, step in seen if s == "running" and step]
    assert steps and steps == sorted(steps), "progress rows move forward while running"
    assert job["progress"]["total_steps"] == 6
    history = job["progress"]["history"]  # the page's loss chart, kept on the row
    assert [p[0] for p in history] == sorted(p[0] for p in history)
    assert history[-1][0] == job["progress"]["step"] and history[-1][1] is not None
    # Six 5 s clips: pieces from at least two of them held out (10 s), validated on the
    # schedule (every VC_VALIDATE_EVERY_STEPS) and once more at the step limit.
    held = job["progress"]["held_out"]
    assert held["seconds"] >= 10 and held["files"] >= 2 and held["pieces"] == len(held["names"])
    curve = job["progress"]["val_history"]
    assert curve and curve[-1][0] == job["progress"]["step"], curve
    assert all(loss > 0 for _, loss in curve), curve
    best_step, best_loss = min(curve, key=lambda point: point[1])

    models = alice.client.get(f"/profiles/{pid}/models").json()
    assert len(models) == 1 and models[0]["active"] is True
    metrics = models[0]["metrics"]
    assert metrics["steps"] >= 6
    assert metrics["stop_reason"] == job["progress"]["stop_reason"] == "step_limit"
    assert (metrics["best_step"], metrics["best_val_loss"]) == (best_step, best_loss)
    assert metrics["held_out_seconds"] == held["seconds"]
    # FCPE, the default, tracked the features (the fork alone has no `fcpe`), and the version
    # records where its clips sing: 180-305 Hz with 1 % vibrato
    pitch = models[0]["pitch_range"]
    assert pitch["method"] == "fcpe"
    assert 175 < pitch["p5_hz"] < pitch["median_hz"] < pitch["p95_hz"] < 320, pitch
    links = alice.client.get(f"/models/{models[0]['id']}/download").json()
    model_path, config_path = tmp_path / "model.pth", tmp_path / "config.json"
    model_path.write_bytes(httpx.get(links["model_url"]).content)
    config_path.write_bytes(httpx.get(links["config_url"]).content)
    assert alice.client.get("/quota").json()["training"]["used"] == 1
    _check_quality_report(alice, models[0], tmp_path)

    # The fork's own inference loads the artifacts and converts a clip, same length.
    cache = services.settings.model_cache_dir
    code = f"""
from pathlib import Path
from gpu.weights import use_cache
use_cache(Path({cache!r}), offline=True)
import numpy as np, soundfile as sf
from so_vits_svc_fork.inference.core import Svc
svc = Svc(net_g_path={str(model_path)!r}, config_path={str(config_path)!r}, device="cpu")
audio = np.asarray(sf.read({str(tmp_path / "in.wav")!r}, dtype="float32")[0])
out = svc.infer_silence(audio, speaker=list(svc.spk2id.keys())[0], transpose=0,
                        auto_predict_f0=False, f0_method="dio", db_thresh=-40)
sf.write({str(tmp_path / "out.wav")!r}, out, svc.target_sample)
"""
    sf.write(tmp_path / "in.wav", voice(2.0)[:, 0], 44100)
    subprocess.run([sys.executable, "-c", code], env=worker_env, check=True, timeout=300)
    out, rate = sf.read(tmp_path / "out.wav")
    assert rate == 44100 and len(out) == 2 * 44100
    assert np.isfinite(out).all()
    import torch

    exported = torch.load(model_path, weights_only=True)
    assert exported["iteration"] == metrics["best_epoch"], "the best epoch's generator"
    _check_retrieval(models[0], links, tmp_path, worker_env)


def _check_retrieval(model: dict, links: dict, tmp_path: Path, env: dict[str, str]) -> None:
    """The version has its cluster model and the default ratio its report chose, and the
    downloaded files work with the fork's own `svc infer` as a person would run it."""
    metrics = model["metrics"]
    assert metrics["retrieval"]["clusters"] >= 2 and "retrieval_error" not in metrics
    report = QualityReport.model_validate(metrics["quality"])
    by_ratio = {r.cluster_ratio: r.speaker_similarity for r in report.similarity_by_ratio}
    print("similarity by cluster ratio:", by_ratio, "default", report.cluster_ratio)
    assert set(by_ratio) == {0.0, 0.5}
    best = max(by_ratio, key=lambda r: (by_ratio[r], -r))
    assert model["has_cluster"] and model["cluster_ratio"] == report.cluster_ratio == best
    assert report.speaker_similarity == by_ratio[best]
    cluster_path = tmp_path / "cluster.pt"
    cluster_path.write_bytes(httpx.get(links["cluster_url"]).content)

    # The fork's CLI reads the cluster file with torch's default loader, which torch >= 2.6
    # makes weights-only; the switch torch documents for trusted files lets it (README).
    out_path = tmp_path / "in.cli.wav"
    cli = [
        str(Path(sys.executable).parent / "svc"), "infer", str(tmp_path / "in.wav"),
        "-m", str(tmp_path / "model.pth"), "-c", str(tmp_path / "config.json"),
        "-k", str(cluster_path), "-r", "0.5", "-o", str(out_path), "-fm", "dio", "-na",
    ]  # fmt: skip
    from gpu.weights import hf_home

    cache = Path(env["VC_MODEL_CACHE_DIR"])  # the offline ContentVec, where the hub keeps it
    cli_env = env | {
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
        "HF_HOME": str(hf_home(cache)),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(cli, env=cli_env, capture_output=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    out, rate = sf.read(out_path)
    assert rate == 44100 and len(out) == 2 * 44100 and np.isfinite(out).all()


def _check_quality_report(user, model: dict, tmp_path: Path) -> None:
    """The report measured on the held-out pieces (tiny-model numbers say nothing about
    quality, only that every measurement ran), and its preview pair beside the model."""
    report = QualityReport.model_validate(model["metrics"]["quality"])
    assert "quality_error" not in model["metrics"]
    assert report.held_out_pieces >= 1 and report.held_out_seconds > 0
    assert report.speaker_similarity is not None and -1 <= report.speaker_similarity <= 1
    assert report.speaker_similarity_original is not None
    assert [m.transpose for m in report.melody] == [0, 3]
    assert report.mcd_db is not None and report.mcd_db > 0
    assert report.f0_method == "fcpe" and set(report.tools) == set(quality.TOOLS)
    links = user.client.get(f"/models/{model['id']}/preview").json()
    lengths = []
    for side in ("original", "converted"):
        path = tmp_path / f"preview-{side}.wav"
        path.write_bytes(httpx.get(links[f"{side}_url"]).content)
        audio, rate = sf.read(path)
        assert rate == 44100 and np.abs(audio).max() > 0
        assert sf.info(path).subtype == "PCM_24", "a wav24/flac download carries 24 bits"
        lengths.append(len(audio))
    assert lengths[0] == lengths[1] == round(report.preview_seconds * 44100)
    assert links["seconds"] == report.preview_seconds <= 10.0


@pytest.mark.timeout(1200)  # its own waits allow a slow shared CPU
def test_crash_after_a_checkpoint_resumes_and_charges_once(
    repo, alice, services, api_url, relay_secret_key, worker_env
) -> None:
    pid = UUID(_profile_with_clips(alice, services, api_url, relay_secret_key, "resume"))
    job = repo.start_training(alice.id, pid, {"preset": "tiny", "max_steps": 12})
    work = Path(services.settings.work_dir) / "training" / str(job.id) / "model"
    worker_env = worker_env | {"VC_CHECKPOINT_SECONDS": "0"}  # a resume checkpoint each epoch
    first = _worker(worker_env, job.id)
    _wait(lambda: _has_checkpoint(work), 240, "a checkpoint")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    crashed = repo.get_job("training", alice.id, job.id)
    assert crashed.status == "running"
    step_at_crash = crashed.progress.step or 0

    second = _worker(worker_env, job.id)
    assert second.wait(900) == 0, _log_of(worker_env, job.id)  # a CPU shared with other runs
    done = repo.get_job("training", alice.id, job.id)
    assert done.status == "succeeded"
    assert done.attempt == 2
    version = repo.list_model_versions(alice.id, pid)[0]
    assert version.metrics["resumed_from_step"] > 0, _log_of(worker_env, job.id)
    assert version.metrics["steps"] >= 12
    assert version.metrics["best_step"] is not None
    assert step_at_crash >= 1
    assert repo.quota_status(alice.id).training.used == 1


def test_cancel_while_running_stops_the_worker(
    repo, alice, services, api_url, relay_secret_key, worker_env
) -> None:
    pid = UUID(_profile_with_clips(alice, services, api_url, relay_secret_key, "cancel"))
    job = repo.start_training(alice.id, pid, {"preset": "tiny", "max_steps": 200})
    worker = _worker(worker_env, job.id)
    _wait(
        lambda: (repo.get_job("training", alice.id, job.id).progress.step or 0) >= 1,
        240,
        "training steps",
    )
    canceled_at = time.monotonic()
    response = alice.client.post(f"/trainings/{job.id}/cancel")
    assert response.json()["status"] == "canceled"
    assert worker.wait(30) == 0
    assert time.monotonic() - canceled_at < 15
    assert repo.list_model_versions(alice.id, pid) == []
    assert repo.quota_status(alice.id).training.used == 0
    assert not (Path(services.settings.work_dir) / "training" / str(job.id)).exists()


def test_dead_worker_is_reaped_and_refunded(
    repo, alice, services, api_url, relay_secret_key, worker_env
) -> None:
    pid = UUID(_profile_with_clips(alice, services, api_url, relay_secret_key, "dies"))
    job = repo.start_training(alice.id, pid, {"preset": "tiny", "max_steps": 200})
    worker = _worker(worker_env, job.id)
    _wait(lambda: repo.get_job("training", alice.id, job.id).status == "running", 120, "claim")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)
    quick = Repository(repo.db, repo.settings.model_copy(update={"heartbeat_timeout_seconds": 1}))
    time.sleep(1.5)
    reaped = quick.reap_stale_jobs()
    assert {
        "kind": "training",
        "id": str(job.id),
        "status": "failed",
        "error_code": "WORKER_LOST",
    } in reaped
    assert repo.quota_status(alice.id).training.used == 0


def test_refusals(repo, alice, bob) -> None:
    strict = Repository(repo.db, repo.settings.model_copy(update={"min_dataset_seconds": 180}))
    short = strict.create_profile(alice.id, "short")
    ready_dataset(strict, alice.id, short.id, 100)
    assert _refusal(lambda: strict.start_training(alice.id, short.id, {})) == "DATASET_TOO_SHORT"

    shrunk = Repository(repo.db, repo.settings.model_copy(update={"max_dataset_seconds": 150}))
    long = repo.create_profile(alice.id, "long")
    ready_dataset(repo, alice.id, long.id, 200)
    assert _refusal(lambda: shrunk.start_training(alice.id, long.id, {})) == "DATASET_TOO_LONG"

    ok = repo.create_profile(alice.id, "ok")
    ready_dataset(repo, alice.id, ok.id, 200)
    first = alice.client.post(
        f"/profiles/{ok.id}/trainings", json={"preset": "tiny", "max_steps": 10}
    )
    assert first.status_code == 202
    second = alice.client.post(f"/profiles/{ok.id}/trainings", json={"preset": "tiny"})
    assert (second.status_code, second.json()["error"]["code"]) == (409, "TRAINING_IN_PROGRESS")
    alice.client.post(f"/trainings/{first.json()['id']}/cancel")

    assert bob.client.post(f"/profiles/{ok.id}/trainings", json={}).status_code == 404
    assert (
        alice.client.post(f"/profiles/{ok.id}/trainings", json={"preset": "huge"}).status_code
        == 422
    )

    # The monthly quota: three reservations (one-at-a-time lifted to take them), then 429.
    lifted = Repository(repo.db, repo.settings.model_copy(update={"max_active_trainings": 10}))
    mine = lifted.create_profile(bob.id, "bob's")
    ready_dataset(lifted, bob.id, mine.id, 200)
    for _ in range(3):
        lifted.start_training(bob.id, mine.id, {})
    fourth = bob.client.post(f"/profiles/{mine.id}/trainings", json={})
    assert fourth.status_code == 429
    error = fourth.json()["error"]
    assert error["code"] == "QUOTA_EXCEEDED"
    assert error["details"]["remaining"] == 0 and error["details"]["resets_at"]


def _refusal(fn) -> str:
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError) as caught:
        fn()
    return caught.value.code


def test_torn_checkpoints_are_dropped_before_resuming(tmp_path) -> None:
    import torch

    from gpu.training.trainer import drop_torn_checkpoints

    for name in ("G_0.pth", "D_0.pth", "G_1.pth", "D_1.pth", "G_2.pth"):
        torch.save({"model": {}}, tmp_path / name)
    whole = (tmp_path / "D_1.pth").read_bytes()
    (tmp_path / "D_2.pth").write_bytes(whole[: len(whole) // 2])  # killed mid-write
    removed = {p.name for p in drop_torn_checkpoints(tmp_path)}
    assert removed == {"G_2.pth", "D_2.pth"}
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == [
        "D_0.pth",
        "D_1.pth",
        "G_0.pth",
        "G_1.pth",
    ]


def test_a_failed_spawn_fails_the_job_and_refunds(repo, alice) -> None:
    from pipeline.errors import Unavailable
    from pipeline.launch import launch

    class Down:
        def spawn(self, kind, target_id):
            raise ConnectionError("no workers today")

        def cancel(self, call_id):
            return None

    profile = repo.create_profile(alice.id, "no workers")
    ready_dataset(repo, alice.id, profile.id, 60)
    job = repo.start_training(alice.id, profile.id, {"preset": "tiny"})
    with pytest.raises(Unavailable):
        launch(repo, Down(), "training", job.id)
    failed = repo.get_job("training", alice.id, job.id)
    assert (failed.status, failed.error_code) == ("failed", "DISPATCH_FAILED")
    assert repo.quota_status(alice.id).training.used == 0


def test_loss_history_stays_bounded_ordered_and_ends_at_the_latest_step() -> None:
    """The chart's history is thinned as a run goes on, never grown without bound."""
    callback = ProgressCallback(total_steps=10_000, every_seconds=0, sink=lambda _: True)
    for step in range(1, 1001):
        callback._remember(step, 1 / step, None, 0.5)
    steps = [point[0] for point in callback.history]
    assert HISTORY_POINTS // 2 <= len(steps) <= HISTORY_POINTS
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == 1000
    gaps = {b - a for a, b in pairwise(steps)}
    assert len(gaps) <= 2, f"evenly spread: {sorted(gaps)}"
    assert callback.history[-1] == [1000, 0.001, None, 0.5]


def test_the_exported_generator_is_the_best_validated_one_not_the_last(
    offline_models_env, tmp_path
) -> None:
    """The real fork trains the tiny model in a worker-like process with every checkpoint
    kept (one each epoch of 2 steps, validating every 2 steps); the validation losses it
    measures are replaced by a script whose minimum is the second evaluation, so the run
    plateaus 4 steps (two evaluations) later: the exported generator must be the fork's own
    checkpoint of that second epoch, not the last one."""
    dataset = tmp_path / "dataset" / "44k"
    (dataset / "voice").mkdir(parents=True)
    for i in range(6):  # three dataset files, two pieces each
        name = f"file{i // 2}_{i % 2 * 5:.3f}_{i % 2 * 5 + 5:.3f}.wav"
        sf.write(dataset / "voice" / name, voice(5.0, f0=180 + 25 * i, seed=i)[:, 0], 44100)
    code = f"""
import json
from pathlib import Path
from gpu.measures import f0
from gpu.training.early_stop import EarlyStopping
from gpu.training.prepare import extract_features, write_config
from gpu.training.presets import TINY
from gpu.training.schedule import Schedule
from gpu.training.trainer import export_generator, fit

f0.install()
dataset, work = Path({str(dataset)!r}), Path({str(tmp_path)!r})
config_path = write_config(dataset, work, TINY, 40, seed="job")
config = json.loads(config_path.read_text())
config["train"]["keep_ckpts"] = 0  # keep every epoch's checkpoint, to compare with
config_path.write_text(json.dumps(config))
extract_features(dataset, config_path, "dio")

measured, script = [], iter([3.0, 1.0, 2.0, 2.5, 0.1, 0.1])
observe = EarlyStopping.observe
def scripted(self, step, epoch, loss):
    measured.append(loss)
    return observe(self, step, epoch, next(script))
EarlyStopping.observe = scripted
schedule = Schedule(validate_every=2, checkpoint_seconds=0, patience=4)  # 2 steps an epoch
result = fit(config_path, 40, 0.0, lambda progress: True, schedule)
export_generator(work / "model", work / "exported.pth")
print("RESULT", json.dumps({{"summary": result.summary(), "steps": result.steps,
                            "measured": measured, "curve": result.val_history}}))
"""
    env = offline_models_env | {"PYTHONPATH": os.getcwd()}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, timeout=900, cwd=tmp_path, capture_output=True
    )
    out = run.stdout.decode()
    assert run.returncode == 0, run.stderr.decode()[-4000:]
    result = json.loads(out.split("RESULT ", 1)[1])
    summary = result["summary"]
    assert summary["stop_reason"] == "plateau" and summary["best_epoch"] == 2, result
    assert summary["best_val_loss"] == 1.0 and len(result["curve"]) == 4
    assert result["steps"] < 40 and summary["best_step"] == result["curve"][1][0]
    assert all(np.isfinite(result["measured"])) and min(result["measured"]) > 0

    import torch

    model = tmp_path / "model"
    exported = torch.load(tmp_path / "exported.pth", weights_only=True)
    best = torch.load(model / "G_2.pth", weights_only=True)["model"]
    last = torch.load(model / "G_4.pth", weights_only=True)["model"]
    assert exported["iteration"] == 2 and exported["model"].keys() == best.keys()
    assert all(torch.equal(exported["model"][k], best[k]) for k in best)
    assert any(not torch.equal(exported["model"][k], last[k]) for k in last)


@pytest.mark.timeout(900)  # its own waits allow a slow shared CPU
def test_an_old_worker_stops_quietly_when_a_retry_claims_its_job(
    repo, alice, services, api_url, relay_secret_key, worker_env
) -> None:
    """Two workers on one job (a retry while the first still runs): the retried worker's claim
    counts attempt 2, the first worker's next heartbeat gets STALE_ATTEMPT, and it exits
    without failing the job or removing the work dir the retry resumes from."""
    pid = UUID(_profile_with_clips(alice, services, api_url, relay_secret_key, "stale"))
    job = repo.start_training(alice.id, pid, {"preset": "tiny", "max_steps": 200})
    work = Path(services.settings.work_dir) / "training" / str(job.id)
    worker = _worker(worker_env, job.id)
    _wait(
        lambda: repo.get_job("training", alice.id, job.id).progress.phase == "train",
        600,
        "the training phase",
    )
    assert repo.claim_job("training", job.id).attempt == 2  # the retried worker's claim
    assert worker.wait(120) == 0, _log_of(worker_env, job.id)
    row = repo.get_job("training", alice.id, job.id)
    assert (row.status, row.attempt, row.error_code) == ("running", 2, None)
    assert work.exists(), "the work dir stays for the newer attempt"
    assert "STALE_ATTEMPT" in _log_of(worker_env, job.id)
    repo.cancel_job("training", alice.id, job.id)
