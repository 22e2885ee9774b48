"""The API SIGKILLed between writing a job row and spawning its worker: the job still runs.

Found by aiming the harness's `api_kill` at the one moment it could not hit by chance: the
training row committed (quota reserved, `queued`, no `worker_call_id`), the spawn never
happened, and nothing but the reaper ever looked at the row again: two hours later
(`VC_QUEUED_TIMEOUT_SECONDS`) it failed NOT_STARTED with a refund. The person waited two
hours for a training that never started. The reaper's cron now launches such a row once it
has waited longer than a launch takes (`take_unlaunched_jobs`), as the API would have.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pipeline import cron
from pipeline.local.stack import REPO_ROOT
from pipeline.services import build_services
from tests.faults.stack import ChaosStack, wait_for
from tests.helpers import ready_dataset

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]


def _healthy(url: str) -> bool:
    return httpx.get(f"{url}/health", timeout=1).status_code == 200


def _row(stack: ChaosStack, user_id: object) -> tuple:
    with stack.sql() as conn:
        return conn.execute(
            "select j.id, j.status, j.worker_call_id, j.attempt, j.quota_state,"
            " (select coalesce(sum(used), 0) from public.usage_counters c"
            "   where c.user_id = j.user_id)"
            " from public.training_jobs j where j.user_id = %s",
            (user_id,),
        ).fetchone()


def test_a_job_whose_spawn_died_with_the_api_still_runs(tmp_path: Path) -> None:
    stack = ChaosStack.create(tmp_path / "stack")
    services = None
    api = None
    try:
        stack.start_database()
        stack.start_storage()
        stack.start_auth()
        services = build_services(stack.settings(dispatch="thread"))
        email = "killed-before-spawn@test.local"
        user_id, token = stack.ensure_user(email), stack.dev_token(email)
        profile = services.repo.create_profile(user_id, "killed")
        ready_dataset(services.repo, user_id, profile.id, 200)

        args = [sys.executable, "-m", "tests.faults.api_dies_before_spawn"]
        api = subprocess.Popen(
            [*args, str(stack.config.api_port)], env=os.environ | stack.env(), cwd=REPO_ROOT
        )
        assert wait_for(lambda: _healthy(stack.api_url), 120)
        with pytest.raises(httpx.TransportError):  # the API died mid-request
            httpx.post(
                f"{stack.api_url}/profiles/{profile.id}/trainings",
                json={"preset": "tiny"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
        assert api.wait(10) == -signal.SIGKILL
        _, status, call_id, attempt, quota_state, used = _row(stack, user_id)
        assert (status, call_id, attempt, used) == ("queued", None, 0, 1)  # the row, no worker

        # The reaper's cron, as Modal runs it: the job is launched once it waited a while
        # (VC_UNLAUNCHED_AFTER_SECONDS, 5 s here), and a real worker claims it.
        def claimed() -> bool:
            cron.reap(services)
            return _row(stack, user_id)[3] >= 1

        assert wait_for(claimed, 120, every=1), _row(stack, user_id)
        _, status, call_id, attempt, quota_state, used = _row(stack, user_id)
        assert call_id.startswith("local-") and attempt == 1
        # Its end follows the rules: charged if it trained, refunded if it failed (here it
        # may: no base models were prepared for this stack), never launched twice.
        assert wait_for(lambda: _row(stack, user_id)[1] in ("succeeded", "failed"), 300)
        _, status, call_id, attempt, quota_state, used = _row(stack, user_id)
        assert attempt == 1
        assert (quota_state, used) == (
            ("charged", 1) if status == "succeeded" else ("refunded", 0)
        ), status
        cron.reap(services)
        assert _row(stack, user_id)[3] == 1  # not taken again
    finally:
        if api is not None and api.poll() is None:
            api.kill()
        if services is not None:
            services.close()
        stack.stop()
