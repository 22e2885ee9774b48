"""The Modal deployment, tested without Modal credentials: the app file imports offline and
registers what modal.toml says, the manifest refuses mistakes readably, the web function
serves the real app, the dispatcher spawns and cancels through the Modal client's interface,
and the scheduled tasks do their work against the local stack."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4

import modal
import pytest
import respx
from fastapi.testclient import TestClient
from pydantic import SecretStr

from pipeline import cron, keys
from pipeline.dispatch_modal import ModalDispatcher
from pipeline.launch import cancel, launch
from pipeline.manifest import ManifestError, load_manifest
from pipeline.repository import Repository
from pipeline.settings import as_env
from tests.audio import encode, voice
from tests.events_helpers import r2_event
from tests.fake_cloudflare_queue import BASE, FakeQueue
from tests.helpers import new_conversion, ready_dataset, trained_profile

ROOT = Path(__file__).resolve().parents[1]


def test_app_imports_offline_without_torch_or_a_token(tmp_path) -> None:
    code = (
        "import sys, modal_app as m; "
        "print(sorted(m.FUNCTION_OPTIONS)); "
        "print([x for x in ('torch', 'so_vits_svc_fork') if x in sys.modules])"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.splitlines()  # fmt: skip
    assert out[0] == str(sorted(["web", "train", "convert", "probe", "quota_reset", "reaper",
                                  "reconciler", "queue_pull", "retention"]))  # fmt: skip
    assert out[1] == "[]"


def test_functions_are_registered_as_the_manifest_says() -> None:
    import modal_app

    manifest = load_manifest(ROOT / "modal.toml")
    for name, spec in manifest.functions.items():
        opts = modal_app.FUNCTION_OPTIONS[name]
        assert opts["timeout"] == spec.timeout, name
        assert opts.get("retries", 0) == spec.retries, name
        assert opts.get("gpu") == spec.gpu, name
        assert [s.name for s in opts["secrets"]] == manifest.secrets.names  # type: ignore[attr-defined]
        schedule = opts.get("schedule")
        assert (schedule is not None) == (spec.schedule is not None), name
    train = modal_app.train._spec_
    assert train.gpus == manifest.functions["train"].gpu
    assert list(train.volumes) == [modal_app.WORK_DIR]
    assert isinstance(modal_app.Converter, modal.Cls)
    assert not any("torch" in r for r in modal_app.WEB_REQUIREMENTS)
    assert any(r.startswith("torch==") for r in modal_app.GPU_REQUIREMENTS)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('gpu = "L4"', 'gpu = "K80"'), "functions.train.gpu"),
        (lambda t: t.replace('"*/5 * * * *"', '"every five minutes"', 1), "schedule"),
        (lambda t: t.replace("[functions.probe]", "[functions.prob]"), "probe"),
        (lambda t: t.replace("retries = 2", "retrys = 2", 1), "retrys"),
        (lambda t: t.replace('name = "svc-pipeline"', 'name = "Bad Name!"'), "app.name"),
        (lambda t: t + "\n[broken", "modal.toml"),
    ],
)
def test_invalid_manifest_fails_readably(tmp_path, edit, message) -> None:
    bad = tmp_path / "modal.toml"
    bad.write_text(edit((ROOT / "modal.toml").read_text()))
    with pytest.raises(ManifestError, match=message.replace(".", r"\.")):
        load_manifest(bad)


def test_web_function_serves_the_api(monkeypatch, settings) -> None:
    import modal_app

    for key, value in as_env(settings).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VC_DISPATCH", "inline")
    with TestClient(modal_app.web.local()) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "storage": True}


class FakeModal:
    """The three names of the `modal` client the dispatcher uses, recording calls."""

    def __init__(self) -> None:
        self.spawned: list[tuple[str, str, str]] = []
        self.canceled: list[str] = []
        outer = self

        class Call:
            def __init__(self, call_id: str) -> None:
                self.object_id = call_id

            def cancel(self) -> None:
                outer.canceled.append(self.object_id)

        def spawner(name: str):
            def spawn(arg: str) -> Call:
                outer.spawned.append((name, arg, f"fc-{len(outer.spawned)}"))
                return Call(f"fc-{len(outer.spawned) - 1}")

            return SimpleNamespace(spawn=spawn)

        self.Function = SimpleNamespace(from_name=lambda app, name, environment_name=None:
                                        spawner(f"{app}.{name}"))  # fmt: skip
        self.Cls = SimpleNamespace(from_name=lambda app, name, environment_name=None: (
            lambda: SimpleNamespace(convert=spawner(f"{app}.{name}.convert"))))  # fmt: skip
        self.FunctionCall = SimpleNamespace(from_id=lambda call_id: Call(call_id))


def test_modal_dispatcher_stores_the_call_and_cancels_it(repo, alice) -> None:
    fake = FakeModal()
    dispatcher = ModalDispatcher("svc-pipeline", "main", client=fake)
    profile = repo.create_profile(alice.id, "modal")
    ready_dataset(repo, alice.id, profile.id, 60)
    job = repo.start_training(alice.id, profile.id, {})
    launch(repo, dispatcher, "training", job.id)
    assert fake.spawned == [("svc-pipeline.train", str(job.id), "fc-0")]
    row = repo.get_job_by_id("training", job.id)
    assert row.worker_call_id == "fc-0"
    cancel(repo, dispatcher, "training", alice.id, job.id)
    assert fake.canceled == ["fc-0"]
    assert dispatcher.spawn("convert", job.id) == "fc-1"
    assert fake.spawned[-1][0] == "svc-pipeline.Converter.convert"


def test_scheduled_tasks_against_the_local_stack(services, repo, sql, alice) -> None:
    made = trained_profile(repo, alice.id)
    new_conversion(repo, alice.id, made["profile_id"], expires_in=-1)
    reaped = cron.reap(services)
    assert any(r["error_code"] == "UPLOAD_EXPIRED" for r in reaped)
    assert repo.quota_status(alice.id).conversion.used == 0

    new_conversion(repo, alice.id, made["profile_id"])
    rolled = cron.reset_quotas(services, datetime.now(UTC) + timedelta(days=1))
    assert rolled["conversion"] >= 1
    used = sql.execute("select used from public.usage_counters where user_id = %s and "
                       "kind = 'conversion'", (alice.id,)).fetchone()[0]  # fmt: skip
    assert used == 0

    profile = repo.create_profile(alice.id, "lost event")
    file_id = uuid4()
    key = keys.dataset_key(alice.id, profile.id, file_id, "lost.wav")
    data = encode(voice(3.0), 44100, "wav")
    repo.register_upload(alice.id, profile.id, file_id, key, "lost.wav", "audio/wav", len(data))
    services.storage._s3.put_object(Bucket=services.storage.bucket, Key=key, Body=data)
    sql.execute("update public.dataset_files set created_at = now() - interval '1 hour' "
                "where id = %s", (file_id,))  # fmt: skip
    assert str(file_id) in cron.reconcile(services)["probed"]
    assert repo.get_dataset_file(file_id).status == "ready"
    assert cron.pull_queue(services) == {"pulled": 0}  # not configured: no work


def test_queue_pull_task_drains_the_fake_queue(services, repo, alice) -> None:
    from pipeline.services import build_services

    settings = services.settings.model_copy(update={
        "cf_account_id": "acct", "cf_queue_id": "queue", "cf_api_base_url": BASE,
        "cf_api_token": SecretStr("cf-token"),
    })  # fmt: skip
    pulling = build_services(settings)
    profile = repo.create_profile(alice.id, "pulled")
    file_id = uuid4()
    key = keys.dataset_key(alice.id, profile.id, file_id, "x.wav")
    repo.register_upload(alice.id, profile.id, file_id, key, "x.wav", "audio/wav", 10)
    fake = FakeQueue()
    fake.send(r2_event(settings.s3_bucket, key, "e1", 10, action="DeleteObject"))
    fake.send("not an event")
    with respx.mock(assert_all_called=False) as router:
        fake.mount(router)
        totals = cron.pull_queue(pulling)
    pulling.close()
    assert totals == {"pulled": 2, "acked": 2, "retried": 0, "invalid": 1}
    assert Repository(repo.db, settings).get_dataset_file(file_id).status == "deleted"
