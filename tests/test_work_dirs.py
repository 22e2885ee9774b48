"""A person's recordings leave the training work volume whatever way their training ends: a
cancel delivered as Modal's `InputCancellation` (a BaseException), an erasure while it runs,
a budget stop once its grace period is over; the sweep removes what no job may use."""

import shutil
from pathlib import Path
from uuid import uuid4

import pytest
from modal.exception import InputCancellation

from gpu.training.job import TrainingRun
from pipeline import cron
from pipeline.work_dirs import compile_cache_dir, sweep_work_dirs, training_work_dir
from tests.helpers import ready_dataset


def _recordings(work: Path) -> None:
    """What a training leaves in its work dir by the time it trains."""
    (work / "dataset_raw" / "speaker").mkdir(parents=True, exist_ok=True)
    (work / "dataset_raw" / "speaker" / "take1.wav").write_bytes(b"RIFF" + b"\0" * 64)
    (work / "model").mkdir(exist_ok=True)
    (work / "model" / "G_1.pth").write_bytes(b"\0" * 64)


def _training(repo, user_id, name: str):
    profile = repo.create_profile(user_id, name)
    ready_dataset(repo, user_id, profile.id, 200)
    return repo.start_training(user_id, profile.id, {"preset": "tiny"})


def _run(services, job_id, during) -> tuple[TrainingRun, object]:
    """The real worker's run with the training itself replaced by `during`."""
    run = TrainingRun(services.worker_repo, services.storage, services.settings, job_id)

    def train(_job) -> None:
        _recordings(run.work)
        run.phase("prepare")
        during(run)

    run.phases = train  # type: ignore[method-assign]
    return run, run.work


def test_a_cancel_delivered_as_input_cancellation_removes_the_work_dir(
    services, repo, alice
) -> None:
    job = _training(repo, alice.id, "modal cancel")

    def canceled_by_modal(run) -> None:
        alice.client.post(f"/trainings/{job.id}/cancel").raise_for_status()
        raise InputCancellation("the input was canceled")  # what Modal raises in the container

    run, work = _run(services, job.id, canceled_by_modal)
    with pytest.raises(InputCancellation):
        run.run()
    assert not work.exists(), "a canceled training's recordings stay on the volume"


def test_a_preempted_training_keeps_its_work_dir_to_resume(services, repo, alice) -> None:
    job = _training(repo, alice.id, "preempted")

    def preempted(run) -> None:
        raise KeyboardInterrupt  # the container is stopped; the row is still running

    run, work = _run(services, job.id, preempted)
    with pytest.raises(KeyboardInterrupt):
        run.run()
    assert (work / "model" / "G_1.pth").exists(), "a retry resumes from here"
    repo.cancel_job("training", alice.id, job.id)
    cron.sweep_work(services)
    assert not work.exists(), "once the job ended, the sweep removes it"


def test_erasing_while_a_training_runs_removes_its_work_dir(services, repo, alice) -> None:
    job = _training(repo, alice.id, "erased")

    def erased(run) -> None:
        response = alice.client.request("DELETE", "/me", json={"confirm": "erase my data"})
        assert response.status_code == 200, response.text
        run.phase("train")  # the next heartbeat finds the job gone

    run, work = _run(services, job.id, erased)
    assert run.run() == "failed"
    assert not work.exists(), "an erased person's recordings stay on the volume"


def test_erasure_sweeps_the_volume_even_when_no_worker_is_left(services, repo, alice) -> None:
    job = _training(repo, alice.id, "no worker")
    repo.claim_job("training", job.id)
    work = training_work_dir(services.settings.work_dir, job.id)
    _recordings(work)  # the worker died and left it
    response = alice.client.request("DELETE", "/me", json={"confirm": "erase my data"})
    assert response.status_code == 200, response.text
    assert not work.exists()


def test_the_sweep_keeps_live_and_recently_budget_stopped_trainings_only(
    services, repo, sql, make_user
) -> None:
    settings = services.settings
    owners = [make_user().id for _ in range(4)]
    running, stopped_recently, stopped_long_ago, finished = (
        _training(repo, owner, name)
        for owner, name in zip(owners, ("running", "recent", "old", "canceled"), strict=True)
    )
    repo.claim_job("training", running.id)
    for job, days in ((stopped_recently, 1), (stopped_long_ago, settings.work_dir_grace_days + 1)):
        sql.execute(
            "update public.training_jobs set status = 'failed', quota_state = 'refunded', "
            "error_code = 'GPU_BUDGET_EXHAUSTED', finished_at = now() - make_interval(days => %s) "
            "where id = %s",
            (int(days), job.id),
        )
    repo.cancel_job("training", owners[3], finished.id)
    gone = uuid4()  # a job whose row was erased
    jobs = {
        "running": running.id,
        "recent": stopped_recently.id,
        "old": stopped_long_ago.id,
        "canceled": finished.id,
        "gone": gone,
    }
    for job_id in jobs.values():
        _recordings(training_work_dir(settings.work_dir, job_id))
    stray = Path(settings.work_dir) / "training" / "not-a-job"
    stray.mkdir(parents=True, exist_ok=True)
    kernels = compile_cache_dir(settings.work_dir) / "torch-x" / "fxgraph" / "kernel"
    kernels.parent.mkdir(parents=True, exist_ok=True)
    kernels.write_bytes(b"compiled")  # every training container's, nobody's data

    sweep_work_dirs(repo, settings.work_dir)

    left = {
        name
        for name, job_id in jobs.items()
        if training_work_dir(settings.work_dir, job_id).exists()
    }
    assert left == {"running", "recent"}
    assert stray.exists(), "a name that is not a job's is left alone"
    assert kernels.read_bytes() == b"compiled", "the compile cache is left alone"
    stray.rmdir()
    shutil.rmtree(compile_cache_dir(settings.work_dir))


@pytest.mark.slow
def test_a_local_cancel_interrupts_the_worker_process_which_removes_its_dir(
    services, repo, alice, api_url, relay_secret_key, worker_env
) -> None:
    """Locally a cancel is SIGTERM to the `python -m gpu train` process: the worker turns it
    into an interruption (`Terminated`), as Modal raises `InputCancellation`, and cleans up."""
    import signal
    from uuid import UUID

    from tests.test_training import _profile_with_clips, _wait, _worker

    pid = UUID(_profile_with_clips(alice, services, api_url, relay_secret_key, "local cancel"))
    job = repo.start_training(alice.id, pid, {"preset": "tiny", "max_steps": 200})
    work = training_work_dir(services.settings.work_dir, job.id)
    worker = _worker(worker_env, job.id)
    _wait(lambda: any(work.rglob("*.wav")) or worker.poll() is not None, 600, "the recordings")
    # The cancel and the signal reach a running worker one after the other, so its heartbeat
    # could see the cancel first and exit cleanly (0) before the signal lands: that is the
    # heartbeat's path, not this one. Held still between the two, the worker meets the signal
    # before it can look at the row.
    worker.send_signal(signal.SIGSTOP)
    repo.cancel_job("training", alice.id, job.id)
    worker.send_signal(signal.SIGTERM)  # what SubprocessDispatcher.cancel sends
    worker.send_signal(signal.SIGCONT)
    assert worker.wait(120) == 128 + signal.SIGTERM
    assert not work.exists(), "a locally canceled training's recordings stay on disk"
