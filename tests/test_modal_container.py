"""Every Modal function, run the way its container runs it, against the local stack.

For each image the test builds, in a temporary directory, the file tree the image would hold
(read from the image definition itself: tests/modal_images.py), with the app file where
Modal puts it (`/root/modal_app.py`) and nothing else from the repository. Then a fresh
interpreter, with `/root` of that tree as its working directory and the container's
environment (`MODAL_IS_REMOTE=1`, `MODAL_ENVIRONMENT`, the image's `ENV`s, the variables of
the function's trust-zone secrets), imports the app and calls the function's body
(tests/container_harness.py). The GPU image's build step runs the same way, offline.

The interpreter is a virtual environment whose only link to the installed packages is a
`.pth` line naming their folder, so the editable install's finder (which would map
`pipeline` back to this checkout) is never loaded: a module the image lacks is missing.
"""

import json
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

import pytest

import modal_app
from gpu.instant import weights as instant_weights
from gpu.separation import weights as separator_weights
from gpu.separation.separate import MODEL_NAME, demucs_repo
from gpu.weights import tiny_contentvec_dir
from pipeline import keys
from pipeline.probe import probe_dataset_file
from pipeline.secret_zones import PRIVILEGED_KEYS, ZONES
from pipeline.settings import Settings, as_env
from tests.audio import encode, voice
from tests.modal_images import ImageContents, app_file_mounts, read_image

HARNESS = Path(__file__).with_name("container_harness.py")
ENVIRONMENT = "svc-test-env"  # what Modal would set from `modal deploy --env svc-test-env`
POOL_MAX = 2


@pytest.fixture(scope="module")
def container_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("container-python")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "lib" / "python3.11" / "site-packages" / "installed.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n"
    )
    return venv / "bin" / "python"


@dataclass
class Container:
    """One image's file tree (`root` stands for `/`) and how to run Python in it."""

    root: Path
    image: ImageContents
    python: Path

    def path(self, container_path: str) -> str:
        return str(self.root / container_path.lstrip("/"))

    def base_env(self) -> dict[str, str]:
        return {"PATH": f"{self.python.parent}:/usr/bin:/bin", "HOME": self.path("/root")}

    def env(self, function: str, settings: Settings, **secret_overrides: str) -> dict[str, str]:
        """The function's container: the image's ENVs (its absolute paths inside this tree),
        what Modal sets, and its trust zones' secrets as an operator following the guide
        fills them from these settings."""
        image_env = {k: self.path(v) if v.startswith("/") else v for k, v in self.image.env.items()}
        return (
            self.base_env()
            | image_env
            | {"MODAL_IS_REMOTE": "1", "MODAL_ENVIRONMENT": ENVIRONMENT}
            | secret_env(function, settings, set(image_env))
            | secret_overrides
            | {"PGAPPNAME": f"svc-container-{function}"}  # so its connections can be counted
        )

    def run(self, env: dict[str, str], **plan: object) -> dict:
        log = self.root.parent / f"{self.root.name}-{plan['function']}.log"
        with log.open("w") as stderr:
            out = subprocess.run(
                [str(self.python), "-c", HARNESS.read_text(), json.dumps(plan, default=str)],
                cwd=self.path("/root"),
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                timeout=1500,
            )
        assert out.returncode == 0, log.read_text()[-4000:]
        line = next(x for x in out.stdout.splitlines() if x.startswith("HARNESS "))
        report = json.loads(line.removeprefix("HARNESS "))
        assert report["file"] == self.path("/root/modal_app.py")  # the copy, not the checkout
        return report


def secret_env(function: str, settings: Settings, image_keys: set[str]) -> dict[str, str]:
    """The variables of the function's secrets: the deployment's settings minus what the
    image sets, each zone holding only its own privileged keys and all its required ones."""
    everything = {k: v for k, v in as_env(settings).items() if k not in image_keys}
    everything["VC_DB_POOL_MAX"] = str(POOL_MAX)
    # A worker's one database login is the worker role's, where the settings name one.
    worker_login = everything.pop("VC_WORKER_DATABASE_URL", None)
    env: dict[str, str] = {}
    for zone in modal_app.MANIFEST.secrets.for_function(function):
        held = {
            k: v
            for k, v in everything.items()
            if k not in PRIVILEGED_KEYS or k in ZONES[zone].holds
        }
        if zone == "worker" and worker_login:
            held["VC_DATABASE_URL"] = worker_login
        missing = [k for k in ZONES[zone].required if k not in held]
        assert not missing, f"{zone} secret lacks {missing}"  # Modal's required_keys check
        env |= held
    return env


def build_tree(image: object, root: Path, python: Path) -> Container:
    contents = read_image(image)  # type: ignore[arg-type]
    files = contents.files | app_file_mounts(modal_app.web)
    for remote, local in files.items():
        target = root / remote.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local, target)
    return Container(root, contents, python)


@pytest.fixture(scope="module")
def web_container(tmp_path_factory: pytest.TempPathFactory, container_python: Path) -> Container:
    return build_tree(modal_app.web_image, tmp_path_factory.mktemp("web-image"), container_python)


@pytest.fixture(scope="module")
def gpu_container(tmp_path_factory: pytest.TempPathFactory, container_python: Path) -> Container:
    """The GPU image after its build step, run offline (tiny ContentVec) in the tree."""
    container = build_tree(
        modal_app.gpu_image, tmp_path_factory.mktemp("gpu-image"), container_python
    )
    steps = [s for s in container.image.steps if s.after_local_files]
    assert [s.command for s in steps] == [modal_app.MODELS_COMMAND]
    for step in steps:
        env = container.base_env() | {
            k: container.path(v) if v.startswith("/") else v for k, v in step.env.items()
        }
        assert "HF_HUB_OFFLINE" not in env  # the build step is the one that downloads
        out = subprocess.run(
            ["bash", "-c", step.command.replace("--no-offline", "--offline")],
            cwd=container.path(step.workdir),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-4000:]
    return container


def test_the_tree_holds_only_the_image_contents(web_container, gpu_container) -> None:
    def top(container: Container) -> set[str]:
        # (the build step's HOME is /root: its caches are not the repository's)
        return {p.name for p in (container.root / "root").iterdir() if p.name[0] != "."}

    carried = {"modal_app.py", "modal.toml", "pyproject.toml"}
    assert top(web_container) == carried | {"schemas", "pipeline", "endpoints"}
    assert top(gpu_container) == carried | {"schemas", "pipeline", "endpoints", "gpu"}
    assert not list((web_container.root / "root").rglob("*.sql"))  # Python files only


def test_gpu_build_step_bakes_the_weights_where_the_cache_says(gpu_container) -> None:
    cache = gpu_container.path(modal_app.MANIFEST.storage.model_cache_dir)
    assert (
        gpu_container.image.env["VC_MODEL_CACHE_DIR"] == modal_app.MANIFEST.storage.model_cache_dir
    )
    assert (tiny_contentvec_dir(Path(cache)) / "config.json").is_file()
    separator = demucs_repo(Path(cache))  # the separator's repository, read by get_model
    assert (separator / f"{MODEL_NAME}.yaml").is_file()
    assert (separator / f"{separator_weights.TINY_SIGNATURE}.th").is_file()
    assert instant_weights.ready(Path(cache))  # Seed-VC's, for instant voice
    assert {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }.items() <= gpu_container.image.env.items()


def test_web_serves_health(web_container, settings) -> None:
    report = web_container.run(
        web_container.env("web", settings), function="web", calls=[[]], health=True
    )
    assert report["results"] == [
        {"status_code": 200, "body": {"status": "ok", "database": True, "storage": True}}
    ]
    assert report["imported"] == []  # no torch in the web image


def uploaded_file(repo, storage, user_id: UUID, age_seconds: int = 0, sql=None) -> UUID:
    profile = repo.create_profile(user_id, f"container {uuid4().hex[:6]}")
    file_id = uuid4()
    key = keys.dataset_key(user_id, profile.id, file_id, "take.wav")
    data = encode(voice(3.0), 44100, "wav")
    repo.register_upload(user_id, profile.id, file_id, key, "take.wav", "audio/wav", len(data))
    storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)
    if age_seconds:
        sql.execute(
            "update public.dataset_files set created_at = now() - make_interval("
            "secs => %s) where id = %s",
            (age_seconds, file_id),
        )
    return file_id


def test_probe_reuses_one_pool_across_calls(web_container, settings, services, repo, alice) -> None:
    files = [uploaded_file(repo, services.storage, alice.id) for _ in range(4)]
    report = web_container.run(
        web_container.env("probe", settings),
        function="probe",
        cls="Prober",
        calls=[[str(f)] for f in files],
        count_connections=True,
    )
    assert report["results"] == ["ready"] * 4
    assert all(repo.get_dataset_file(f).status == "ready" for f in files)
    assert 1 <= report["connections"] <= POOL_MAX


@pytest.mark.parametrize("function", ["quota_reset", "reaper"])
def test_scheduled_functions_reuse_one_pool(web_container, settings, function) -> None:
    report = web_container.run(
        web_container.env(function, settings),
        function=function,
        calls=[[]] * 5,
        count_connections=True,
    )
    assert len(report["results"]) == 5
    assert 1 <= report["connections"] <= POOL_MAX


def test_reconciler_spawns_the_probe_in_the_deployed_environment(
    web_container, settings, services, repo, sql, alice
) -> None:
    file_id = uploaded_file(repo, services.storage, alice.id, age_seconds=3600, sql=sql)
    report = web_container.run(
        web_container.env("reconciler", settings), function="reconciler", calls=[[]]
    )
    assert str(file_id) in report["results"][0]["probed"]
    spawned = [x for x in report["lookups"] if x["args"] == [str(file_id)]]
    assert spawned == [
        {
            "app": modal_app.MANIFEST.app.name,
            "name": "Prober.probe",
            "environment": ENVIRONMENT,
            "args": [str(file_id)],
        }
    ]


def test_queue_pull_without_the_queue_secret_does_nothing(web_container, settings) -> None:
    assert modal_app.MANIFEST.secrets.queue is None  # modal.toml ships the push path
    report = web_container.run(
        web_container.env("queue_pull", settings), function="queue_pull", calls=[[]]
    )
    assert report["results"] == [{"pulled": 0}]


def test_a_worker_refuses_another_zones_secret(web_container, settings) -> None:
    env = web_container.env("probe", settings, VC_JWT_SECRET="leaked", VC_CF_API_TOKEN="x")
    out = subprocess.run(
        [
            str(web_container.python),
            "-c",
            HARNESS.read_text(),
            json.dumps({"function": "probe", "cls": "Prober", "calls": []}),
        ],
        cwd=web_container.path("/root"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "must not hold VC_JWT_SECRET, VC_CF_API_TOKEN" in out.stderr


@pytest.fixture
def training_job(repo, services, alice) -> Iterator[UUID]:
    profile = repo.create_profile(alice.id, "container voice")
    for i in range(6):
        file_id = uuid4()
        key = keys.dataset_key(alice.id, profile.id, file_id, f"{i}.wav")
        data = encode(voice(5.0, f0=180 + 25 * i, seed=i), 44100, "wav")
        repo.register_upload(alice.id, profile.id, file_id, key, f"{i}.wav", "audio/wav", len(data))
        services.storage._s3.put_object(Bucket=services.storage.bucket, Key=key, Body=data)
        probe_dataset_file(repo, services.storage, file_id)
    yield repo.start_training(alice.id, profile.id, {"preset": "tiny"}).id


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_train_then_convert_in_the_gpu_container(
    gpu_container, settings, services, repo, alice, training_job
) -> None:
    report = gpu_container.run(
        gpu_container.env("train", settings), function="train", calls=[[str(training_job)]]
    )
    assert report["results"] == ["succeeded"]
    assert report["commits"] == 1  # the work volume is committed, even on success
    job = repo.get_job_by_id("training", training_job)
    profile_id = job.profile_id

    from datetime import UTC, datetime

    conversion = uuid4()
    key = keys.conversion_input_key(alice.id, profile_id, conversion, "wav")
    data = encode(voice(3.0, f0=200), 44100, "wav")
    repo.create_conversion(
        alice.id,
        profile_id,
        conversion,
        model_version_id=None,
        params={},
        input_key=key,
        input_filename="in.wav",
        input_size_bytes=len(data),
        upload_expires_at=datetime.now(UTC),
    )
    services.storage._s3.put_object(Bucket=services.storage.bucket, Key=key, Body=data)
    repo.queue_conversion(conversion)
    report = gpu_container.run(
        gpu_container.env("convert", settings),
        function="convert",
        cls="Converter",
        calls=[[str(conversion)]],
    )
    assert report["results"] == ["succeeded"]
    row = repo.get_job_by_id("conversion", conversion)
    assert services.storage.head(row.output_key) is not None


def test_separate_in_the_gpu_container(gpu_container, settings, services, repo, alice) -> None:
    """A full mix's separation, as the `separate` function runs it: the worker login, the tiny
    HTDemucs the build step baked, and the vocal registered as a dataset file of the mix."""
    profile = repo.create_profile(alice.id, "container song")
    file_id = uuid4()
    key = keys.dataset_key(alice.id, profile.id, file_id, "song.wav")
    data = encode(voice(4.0, channels=2), 44100, "wav")
    repo.register_upload(
        alice.id, profile.id, file_id, key, "song.wav", "audio/wav", len(data), full_mix=True
    )
    services.storage._s3.put_object(Bucket=services.storage.bucket, Key=key, Body=data)
    probe_dataset_file(repo, services.storage, file_id)  # ready: its separation is queued
    take = repo.take_separation(file_id)
    assert take.taken and take.job is not None
    report = gpu_container.run(
        gpu_container.env("separate", settings), function="separate", calls=[[str(take.job.id)]]
    )
    assert report["results"] == ["succeeded"]
    derived = repo.get_dataset_file(take.job.derived_file_id)
    assert derived is not None and derived.derived_from == file_id
    assert services.storage.head(derived.object_key) is not None
    probe_dataset_file(repo, services.storage, derived.id)  # what its upload event does
    assert repo.get_dataset_file(derived.id).status in {"ready", "rejected"}
