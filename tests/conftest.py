"""Session-wide real infrastructure: embedded Postgres with the real migrations, SeaweedFS
with credentials, the local token issuer, and the real API over HTTP on a free port."""

import base64
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import psycopg
import pytest

from endpoints.app import create_app
from gpu.weights import use_cache
from pipeline.local.issuer import ThreadedServer
from pipeline.local.seaweed import find_free_base, free_port
from pipeline.local.stack import LocalStack, StackConfig
from pipeline.repository import Repository
from pipeline.services import Services, build_services
from pipeline.settings import Settings, as_worker_env


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root = tmp_path_factory.mktemp("stack")
    config = StackConfig(
        root=root, auth_port=free_port(), s3_base_port=find_free_base(), bucket="svc-test"
    )
    stack = LocalStack(config)
    try:
        stack.start_database()
        stack.start_storage()
        stack.start_auth()
        yield stack
    finally:
        stack.stop()


# The offline model cache, pointed at before anything imports huggingface_hub (which reads
# HF_HOME once, at import): in-process conversion tests load from it too.
MODEL_CACHE = Path(tempfile.mkdtemp(prefix="svc-models-"))
use_cache(MODEL_CACHE, offline=True)

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"test-shared-secret-32-bytes-long").decode()


@pytest.fixture(scope="session")
def settings(stack: LocalStack) -> Settings:
    """The local stack's settings, with work run inline so tests see its effects at once."""
    root = stack.config.root
    return stack.settings(
        db_pool_max=60,
        dispatch="inline",
        webhook_secret=WEBHOOK_SECRET,
        webhook_public_key=stack.relay_keys()[1],
        min_dataset_seconds=20,  # six short clips train in seconds on a CPU
        model_cache_dir=str(MODEL_CACHE),
        work_dir=str(root / "work"),
        heartbeat_seconds=1,
        singer_check=False,  # a torch worker per ready file; tests/test_singers.py turns it on
        # the session's jobs that tests leave queued on purpose are not launched by a later
        # test's `cron.reap` (tests/faults/test_api_killed_before_spawn.py covers the launch)
        unlaunched_after_seconds=10**7,
    )


@pytest.fixture(scope="session")
def offline_models_env() -> dict[str, str]:
    """A worker's environment for stages that need only the offline weights, not the stack."""
    env = os.environ | {"VC_MODEL_CACHE_DIR": str(MODEL_CACHE), "VC_OFFLINE_MODELS": "true"}
    subprocess.run([sys.executable, "-m", "gpu", "models", "--offline"], env=env, check=True)
    return env


@pytest.fixture(scope="session")
def worker_env(settings: Settings) -> dict[str, str]:
    """What a GPU worker process sees: the same settings, the worker login as its only
    database login (as `svc_worker`, like production), with the offline weights built."""
    env = os.environ | as_worker_env(settings)
    subprocess.run([sys.executable, "-m", "gpu", "models", "--offline"], env=env, check=True)
    return env


@pytest.fixture(scope="session")
def relay_secret_key(stack: LocalStack) -> str:
    return stack.relay_keys()[0]


@pytest.fixture(scope="session")
def services(settings: Settings) -> Iterator[Services]:
    services = build_services(settings)
    yield services
    services.close()


@pytest.fixture
def repo(services: Services) -> Repository:
    return services.repo


@pytest.fixture(scope="session")
def api_url(services: Services) -> Iterator[str]:
    server = ThreadedServer(create_app(services=services), free_port()).start()
    yield server.url
    server.stop()


@pytest.fixture
def sql(stack: LocalStack) -> Iterator[psycopg.Connection]:
    """A superuser connection for arranging state the API cannot reach (clocks, periods)."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        yield conn


@dataclass
class User:
    id: UUID
    email: str
    token: str
    client: httpx.Client


@pytest.fixture
def make_user(stack: LocalStack, api_url: str) -> Iterator[Callable[[], User]]:
    clients: list[httpx.Client] = []

    def make() -> User:
        email = f"{uuid4().hex[:12]}@test.local"
        token = stack.dev_token(email)
        user_id = stack.ensure_user(email)
        client = httpx.Client(
            base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        clients.append(client)
        return User(user_id, email, token, client)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def alice(make_user: Callable[[], User]) -> User:
    return make_user()


@pytest.fixture
def bob(make_user: Callable[[], User]) -> User:
    return make_user()


@pytest.fixture(scope="session")
def trained_voice(stack: LocalStack, services: Services, worker_env: dict[str, str]):
    """A user with a profile whose tiny model was trained by the real worker (slow tests)."""
    from tests.voices import train_tiny_voice

    email = f"voice-{uuid4().hex[:8]}@test.local"
    user_id = stack.ensure_user(email)
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.quota_overrides (user_id, conversions_per_day) values (%s, 1000)",
            (user_id,),
        )
    voice = train_tiny_voice(services.repo, services.storage, worker_env, user_id)
    return voice, stack.dev_token(email)
