"""With VC_DISPATCH=modal, each trust zone refuses at start-up the settings it would run wrongly
with, naming every variable in one error; a valid production configuration starts."""

import pytest
from pydantic import SecretStr

from endpoints.app import create_app
from pipeline.production import ProductionSettingsError, production_problems
from pipeline.settings import Settings

# What an operator's secrets hold, per zone (no value here is real).
DATABASE = (
    "postgresql://postgres.abcdefghijkl:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
)
WORKER_DATABASE = DATABASE.replace("postgres.abcdefghijkl", "svc_worker.abcdefghijkl")
S3 = {
    "s3_endpoint_url": "https://0123456789abcdef.r2.cloudflarestorage.com",
    "s3_access_key_id": "r2-access-key",
    "s3_secret_access_key": SecretStr("r2-secret-access-key"),
}
WEB = {
    "database_url": DATABASE,
    "supabase_url": "https://abcdefghijkl.supabase.co",
    "cors_origins": ["https://voices.example.com"],
    "webhook_public_key": "whpk_" + "A" * 43,
} | S3
WORKER = {"database_url": WORKER_DATABASE} | S3


def prod(**values: object) -> Settings:
    """Settings from these values alone, as a container with only its secret sees them."""
    return Settings(_env_file=None, dispatch="modal", **values)


@pytest.fixture(autouse=True)
def _no_vc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("VC_")]:
        monkeypatch.delenv(name)


def variables(settings: Settings, zone: str) -> list[str]:
    return [p.variable for p in production_problems(settings, zone)]  # type: ignore[arg-type]


def test_valid_production_settings_pass_in_every_zone() -> None:
    assert variables(prod(**WEB), "web") == []
    assert variables(prod(**WEB), "service") == []
    assert variables(prod(**WORKER), "worker") == []
    assert variables(prod(**WORKER), "service") == []  # the probe builds services too
    assert variables(prod(**WEB), "queue") == []  # push: the puller has nothing to do
    assert create_app(prod(**WEB)).title == "svc-pipeline"  # creating it connects to nothing


def test_local_defaults_are_refused_naming_each_variable() -> None:
    with pytest.raises(ProductionSettingsError) as caught:
        create_app(prod())
    message = str(caught.value)
    for variable in (
        "VC_DATABASE_URL",
        "VC_S3_ENDPOINT_URL",
        "VC_S3_SECRET_ACCESS_KEY",
        "VC_SUPABASE_URL",
        "VC_CORS_ORIGINS",
        "VC_WEBHOOK_PUBLIC_KEY",
    ):
        assert f"  - {variable}: " in message
    assert message.startswith("These settings cannot run in production (VC_DISPATCH=modal, web)")


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"database_url": "postgresql://postgres@localhost:5432/postgres"}, "VC_DATABASE_URL"),
        ({"database_url": "postgresql://postgres@127.0.0.1/postgres"}, "VC_DATABASE_URL"),
        ({"database_url": "postgresql://postgres:@/postgres?host=/tmp/pg"}, "VC_DATABASE_URL"),
        ({"database_url": "host=::1 dbname=postgres"}, "VC_DATABASE_URL"),
        ({"s3_endpoint_url": "http://127.0.0.1:8333"}, "VC_S3_ENDPOINT_URL"),
        ({"s3_endpoint_url": "http://[::1]:8333"}, "VC_S3_ENDPOINT_URL"),
        ({"s3_public_endpoint_url": "http://localhost:8333"}, "VC_S3_PUBLIC_ENDPOINT_URL"),
        ({"s3_secret_access_key": SecretStr("local-secret")}, "VC_S3_SECRET_ACCESS_KEY"),
        ({"s3_secret_access_key": SecretStr("")}, "VC_S3_SECRET_ACCESS_KEY"),
        ({"supabase_url": "http://127.0.0.1:54321"}, "VC_SUPABASE_URL"),
        ({"jwt_issuer": "http://localhost:54321/auth/v1"}, "VC_JWT_ISSUER"),
        ({"cors_origins": []}, "VC_CORS_ORIGINS"),
        (
            {"cors_origins": ["https://voices.example.com", "http://localhost:3000"]},
            "VC_CORS_ORIGINS",
        ),
        ({"webhook_public_key": None}, "VC_WEBHOOK_PUBLIC_KEY"),
    ],
)
def test_each_refusal_of_the_web_endpoint(override: dict, variable: str) -> None:
    settings = prod(**(WEB | override))
    assert variables(settings, "web") == [variable]
    with pytest.raises(ProductionSettingsError, match=variable):
        create_app(settings)


def test_either_webhook_key_serves_the_push_path_and_pull_needs_none() -> None:
    hmac_only = WEB | {"webhook_public_key": None, "webhook_secret": SecretStr("whsec_x")}
    assert variables(prod(**hmac_only), "web") == []
    no_keys = WEB | {"webhook_public_key": None, "event_delivery": "pull"}
    assert variables(prod(**no_keys), "web") == []


def test_the_pull_path_needs_the_cloudflare_settings_in_the_queue_zone() -> None:
    assert variables(prod(**WEB, event_delivery="pull"), "queue") == [
        "VC_CF_ACCOUNT_ID",
        "VC_CF_QUEUE_ID",
        "VC_CF_API_TOKEN",
    ]
    complete = {"cf_account_id": "acc", "cf_queue_id": "q", "cf_api_token": SecretStr("t")}
    assert variables(prod(**WEB, event_delivery="pull", **complete), "queue") == []


def test_the_worker_zone_needs_only_database_and_storage() -> None:
    # no Supabase URL, CORS list or webhook key: a worker holds none of them
    assert variables(prod(**WORKER), "worker") == []
    assert variables(
        prod(**(WORKER | {"s3_secret_access_key": SecretStr("local-secret")})), "worker"
    ) == ["VC_S3_SECRET_ACCESS_KEY"]
    assert variables(prod(**S3), "worker") == ["VC_DATABASE_URL"]
    local_worker = WORKER | {"worker_database_url": "postgresql://svc_worker@localhost/postgres"}
    assert variables(prod(**local_worker), "worker") == ["VC_WORKER_DATABASE_URL"]


def test_a_worker_context_refuses_unsafe_settings_before_connecting() -> None:
    from gpu.runtime import worker_context

    with pytest.raises(ProductionSettingsError) as caught:
        worker_context(prod(**S3))
    assert [p.variable for p in caught.value.problems] == ["VC_DATABASE_URL"]


def test_the_supabase_transport_needs_its_key_and_a_real_project() -> None:
    supabase = S3 | {"db_transport": "supabase", "supabase_url": "http://localhost:54321"}
    assert variables(prod(**supabase), "worker") == [
        "VC_SUPABASE_SERVICE_ROLE_KEY",
        "VC_SUPABASE_URL",
    ]
    supabase |= {
        "supabase_url": "https://abcdefghijkl.supabase.co",
        "supabase_service_role_key": SecretStr("service-role-key"),
    }
    assert variables(prod(**supabase), "worker") == []


def test_nothing_is_checked_off_modal() -> None:
    assert production_problems(Settings(_env_file=None, dispatch="thread"), "web") == []
    assert production_problems(Settings(_env_file=None, dispatch="inline"), "worker") == []


def test_allowing_local_urls_relaxes_only_the_host_rule() -> None:
    local = WEB | {
        "database_url": "postgresql://postgres:@/postgres?host=/tmp/pg",
        "s3_endpoint_url": "http://127.0.0.1:8333",
        "supabase_url": "http://127.0.0.1:54321",
        "cors_origins": ["http://127.0.0.1:3000"],
    }
    assert len(variables(prod(**local), "web")) == 4
    assert variables(prod(**local, allow_local_urls=True), "web") == []
    unsafe = local | {"s3_secret_access_key": SecretStr("local-secret"), "cors_origins": []}
    assert variables(prod(**unsafe, allow_local_urls=True), "web") == [
        "VC_S3_SECRET_ACCESS_KEY",
        "VC_CORS_ORIGINS",
    ]
