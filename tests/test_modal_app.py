"""The Modal deployment, tested without Modal credentials: the app file imports offline and
registers what modal.toml says, the manifest refuses mistakes readably, the web function
serves the real app, the dispatcher spawns and cancels through the Modal client's interface,
and the scheduled tasks do their work against the local stack."""

import json
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from inspect import getclosurevars
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
from pipeline.secret_zones import ZONES, foreign_keys
from pipeline.settings import as_env
from tests.audio import encode, voice
from tests.events_helpers import r2_event
from tests.fake_cloudflare_queue import BASE, FakeQueue
from tests.helpers import new_conversion, ready_dataset, trained_profile
from tests.modal_images import registered

ROOT = Path(__file__).resolve().parents[1]


FUNCTIONS = {
    "web": "web",
    "train": "train",
    "convert": "Converter",
    "probe": "Prober",
    "singers": "singers",
    "separate": "separate",
    "quota_reset": "quota_reset",
    "reaper": "reaper",
    "reconciler": "reconciler",
    "retention": "retention",
    "sweep_work": "sweep_work",
    "queue_pull": "queue_pull",
}


def test_app_imports_offline_without_torch_or_a_token(tmp_path) -> None:
    code = (
        "import sys, modal, modal_app as m; kinds = (modal.Function, modal.Cls); "
        "print(sorted(k for k, v in vars(m).items() if isinstance(v, kinds))); "
        "print([x for x in ('torch', 'so_vits_svc_fork') if x in sys.modules])"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out[0] == str(sorted(FUNCTIONS.values()))
    assert out[1] == "[]"


def test_functions_are_registered_as_the_manifest_says() -> None:
    import modal_app

    manifest = load_manifest(ROOT / "modal.toml")
    for name, spec in manifest.functions.items():
        opts = registered(getattr(modal_app, FUNCTIONS[name]))
        assert opts["timeout"] == spec.timeout, name
        retries = opts["retry_policy"].retries if opts["retry_policy"] else 0
        assert retries == spec.retries, name
        assert opts["gpu"] == spec.gpu, name
        assert opts["max_containers"] == spec.max_containers, name
        secrets = {
            s._name: getclosurevars(s._load).nonlocals["required_keys"] for s in opts["secrets"]
        }
        zones = manifest.secrets.for_function(name)
        assert secrets == {zones[z]: list(ZONES[z].required) for z in zones}, name
        schedule = opts["schedule"]
        cron = schedule.proto_message.cron.cron_string if schedule else None
        assert cron == manifest.schedule(name), name
    assert registered(modal_app.reaper)["schedule"] is not None
    assert registered(modal_app.queue_pull)["schedule"] is None  # no queue secret: push path
    assert list(modal_app.train._spec_.volumes) == [modal_app.WORK_DIR]
    assert isinstance(modal_app.Converter, modal.Cls)
    assert not any("torch" in r for r in modal_app.REQUIREMENTS.web)
    assert any(r.startswith("torch==") for r in modal_app.REQUIREMENTS.gpu)


def test_trust_zones_get_only_their_secrets() -> None:
    manifest = load_manifest(ROOT / "modal.toml")
    worker = manifest.secrets.worker
    for name in ("train", "convert", "probe"):
        assert list(manifest.secrets.for_function(name).values()) == [worker]
    assert manifest.secrets.for_function("web") == {"web": manifest.secrets.web}
    queue = manifest.secrets.model_copy(update={"queue": "q"})
    assert list(queue.for_function("queue_pull")) == ["service", "queue"]
    assert foreign_keys("probe", {"VC_JWT_SECRET": "x", "VC_CF_API_TOKEN": "y"}) == [
        "VC_JWT_SECRET",
        "VC_CF_API_TOKEN",
    ]
    assert foreign_keys("queue_pull", {"VC_CF_API_TOKEN": "y"}) == []
    assert foreign_keys("web", {"VC_JWT_SECRET": "x", "VC_WEBHOOK_SECRET": "w"}) == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('gpu = "H100"', 'gpu = "K80"'), "functions.train.gpu"),
        (lambda t: t.replace('"*/5 * * * *"', '"every five minutes"', 1), "schedule"),
        (lambda t: t.replace("[functions.probe]", "[functions.prob]"), "probe"),
        (lambda t: t.replace("retries = 2", "retrys = 2", 1), "retrys"),
        (lambda t: t.replace('name = "svc-pipeline"', 'name = "Bad Name!"'), "app.name"),
        (lambda t: t + "\n[broken", "modal.toml"),
        (lambda t: t.replace('"svc-pipeline-worker"', '"svc-pipeline-web"'), "trust zone"),
        (lambda t: t.replace("[storage]", 'names = ["x"]\n[storage]'), "secrets.names"),
        (lambda t: t.replace('"svc-pipeline-web"', '"svc pipeline"'), "secrets.web"),
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

        self.lookups: list[str | None] = []

        def function(app, name, environment_name=None):
            self.lookups.append(environment_name)
            return spawner(f"{app}.{name}")

        def cls(app, name, environment_name=None):
            self.lookups.append(environment_name)
            methods = {m: spawner(f"{app}.{name}.{m}") for m in ("convert", "probe")}
            return lambda: SimpleNamespace(**methods)

        self.Function = SimpleNamespace(from_name=function)
        self.Cls = SimpleNamespace(from_name=cls)
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
    dispatcher.spawn("probe", job.id)
    assert fake.spawned[-1][0] == "svc-pipeline.Prober.probe"
    assert fake.lookups == ["main"] * 3


def test_modal_dispatcher_uses_the_deployments_environment(monkeypatch) -> None:
    """Modal sets MODAL_ENVIRONMENT in every container of `modal deploy --env staging`."""
    monkeypatch.setenv("MODAL_ENVIRONMENT", "staging")
    fake = FakeModal()
    ModalDispatcher("svc-pipeline", None, client=fake).spawn("train", uuid4())
    ModalDispatcher("svc-pipeline", "override", client=fake).spawn("train", uuid4())
    monkeypatch.delenv("MODAL_ENVIRONMENT")
    ModalDispatcher("svc-pipeline", None, client=fake).spawn("train", uuid4())
    assert fake.lookups == ["staging", "override", None]


def test_scheduled_tasks_against_the_local_stack(services, repo, sql, alice) -> None:
    made = trained_profile(repo, alice.id)
    new_conversion(repo, alice.id, made["profile_id"], expires_in=-1)
    reaped = cron.reap(services)
    assert any(r["error_code"] == "UPLOAD_EXPIRED" for r in reaped)
    assert repo.quota_status(alice.id).conversion.used == 0

    new_conversion(repo, alice.id, made["profile_id"])
    rolled = cron.reset_quotas(services, datetime.now(UTC) + timedelta(days=1))
    assert rolled["conversion"] >= 1
    used = sql.execute(
        "select used from public.usage_counters where user_id = %s and kind = 'conversion'",
        (alice.id,),
    ).fetchone()[0]
    assert used == 0

    profile = repo.create_profile(alice.id, "lost event")
    file_id = uuid4()
    key = keys.dataset_key(alice.id, profile.id, file_id, "lost.wav")
    data = encode(voice(3.0), 44100, "wav")
    repo.register_upload(alice.id, profile.id, file_id, key, "lost.wav", "audio/wav", len(data))
    services.storage._s3.put_object(Bucket=services.storage.bucket, Key=key, Body=data)
    sql.execute(
        "update public.dataset_files set created_at = now() - interval '1 hour' where id = %s",
        (file_id,),
    )
    assert str(file_id) in cron.reconcile(services)["probed"]
    assert repo.get_dataset_file(file_id).status == "ready"
    assert cron.pull_queue(services) == {"pulled": 0}  # not configured: no work


def test_queue_pull_task_drains_the_fake_queue(services, repo, alice) -> None:
    from pipeline.services import build_services

    settings = services.settings.model_copy(
        update={
            "cf_account_id": "acct",
            "cf_queue_id": "queue",
            "cf_api_base_url": BASE,
            "cf_api_token": SecretStr("cf-token"),
        }
    )
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


def test_the_deploy_guide_matches_the_files() -> None:
    """docs/deploy.md names the secrets, queues, prefix and URL the files actually use."""
    guide = (ROOT / "docs" / "deploy.md").read_text()
    manifest = load_manifest(ROOT / "modal.toml")
    for zone in ZONES:
        assert f"`{zone}` = `svc-pipeline-{zone}`" in guide, zone
        row = next(line for line in guide.splitlines() if line.startswith(f"| `{zone}` ="))
        for key in ZONES[zone].required:
            assert key in row or "the four `VC_S3_*`" in row, (zone, key)
        name = getattr(manifest.secrets, zone) or f"svc-pipeline-{zone}"
        assert f"--from-dotenv ~/svc-secrets/{zone}.env {name}" in guide
    assert f"# queue = {json.dumps('svc-pipeline-queue')}" in (ROOT / "modal.toml").read_text()

    relay = tomllib.loads((ROOT / "relay" / "wrangler.toml").read_text())
    assert relay["vars"]["PIPELINE_URL"].endswith(f"--{manifest.app.name}-web.modal.run")
    assert f"--{manifest.app.name}-web.modal.run" in guide
    consumer = relay["queues"]["consumers"][0]
    for queue in (consumer["queue"], consumer["dead_letter_queue"]):
        assert f"npx wrangler queues create {queue}`" in guide
    assert f"--prefix {keys.ROOT}/ --queue {consumer['queue']}" in guide
    assert f"into `{manifest.storage.model_cache_dir}`" in guide
    assert modal_app_command() in guide

    supabase = tomllib.loads((ROOT / "supabase" / "config.toml").read_text())
    assert supabase["project_id"] == manifest.app.name
    assert supabase["db"]["migrations"]["enabled"] is True


def modal_app_command() -> str:
    import modal_app

    return modal_app.MODELS_COMMAND
