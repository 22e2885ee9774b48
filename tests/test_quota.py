"""Quotas hold under concurrency: reservations are atomic, refunds exact, periods roll."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from pipeline.errors import PipelineError
from pipeline.repository import Repository
from pipeline.services import Services
from tests.helpers import new_conversion, ready_dataset, trained_profile


def _counter(sql, user_id: UUID, kind: str) -> tuple[int, object]:
    row = sql.execute(
        "select used, period_start from public.usage_counters where user_id = %s and kind = %s",
        (user_id, kind),
    ).fetchone()
    return (row[0], row[1]) if row else (0, None)


def _attempt(fn) -> str:
    try:
        fn()
        return "ok"
    except PipelineError as exc:
        return exc.code


@pytest.fixture
def lifted(services: Services) -> Repository:
    """One-at-a-time lifted, so only the quota decides."""
    settings = services.settings.model_copy(update={"max_active_trainings": 100})
    return Repository(services.db, settings)


def test_fifty_concurrent_starts_reserve_exactly_three(lifted, sql, alice) -> None:
    profiles = []
    for i in range(5):
        profile = lifted.create_profile(alice.id, f"race {i}")
        ready_dataset(lifted, alice.id, profile.id, 200)
        profiles.append(profile.id)

    def start(i: int) -> str:
        return _attempt(lambda: lifted.start_training(alice.id, profiles[i % 5], {}))

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(start, range(50)))

    assert results.count("ok") == 3
    assert results.count("QUOTA_EXCEEDED") == 47
    assert _counter(sql, alice.id, "training")[0] == 3
    jobs = lifted.list_jobs("training", alice.id)
    assert len(jobs) == 3


def test_failed_job_refunds_and_refund_happens_once(lifted, sql, alice) -> None:
    profile = lifted.create_profile(alice.id, "refund")
    ready_dataset(lifted, alice.id, profile.id, 200)
    jobs = [lifted.start_training(alice.id, profile.id, {}) for _ in range(3)]
    with pytest.raises(PipelineError) as refused:
        lifted.start_training(alice.id, profile.id, {})
    assert refused.value.code == "QUOTA_EXCEEDED"
    assert refused.value.details["remaining"] == 0
    assert refused.value.details["resets_at"]

    lifted.fail_job("training", jobs[0].id, "INTERNAL", "boom")
    lifted.fail_job("training", jobs[0].id, "INTERNAL", "boom again")
    lifted.cancel_job("training", alice.id, jobs[0].id)
    assert _counter(sql, alice.id, "training")[0] == 2
    lifted.start_training(alice.id, profile.id, {})
    assert _counter(sql, alice.id, "training")[0] == 3


def test_stale_period_rolls_on_reservation_and_late_cron_cannot_over_grant(
    lifted, sql, alice
) -> None:
    profile = lifted.create_profile(alice.id, "roll")
    ready_dataset(lifted, alice.id, profile.id, 200)
    for _ in range(3):
        lifted.start_training(alice.id, profile.id, {})
    # The month turns, and the cron has not run yet.
    sql.execute(
        "update public.usage_counters set period_start = period_start - interval '1 month' "
        "where user_id = %s",
        (alice.id,),
    )
    assert lifted.quota_status(alice.id).training.remaining == 3
    lifted.start_training(alice.id, profile.id, {})
    used, period = _counter(sql, alice.id, "training")
    assert used == 1
    # The late cron, and a cron whose clock lags, leave the new period's reservation alone.
    lifted.reset_quota_periods()
    lifted.reset_quota_periods(datetime.now(UTC) - timedelta(days=40))
    assert _counter(sql, alice.id, "training") == (1, period)


def test_cron_resets_counters_at_a_day_boundary(repo, sql, alice) -> None:
    made = trained_profile(repo, alice.id)
    new_conversion(repo, alice.id, made["profile_id"])
    assert _counter(sql, alice.id, "conversion")[0] == 1
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    rolled = repo.reset_quota_periods(tomorrow)
    assert rolled["conversion"] >= 1
    used, period = _counter(sql, alice.id, "conversion")
    assert used == 0
    assert period == tomorrow.date()


def test_concurrent_conversions_admit_exactly_one(repo, alice) -> None:
    settings = repo.settings.model_copy(update={"conversions_per_day": 50})
    repo = Repository(repo.db, settings)
    made = trained_profile(repo, alice.id)

    def create(_: int) -> str:
        return _attempt(lambda: new_conversion(repo, alice.id, made["profile_id"]))

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(create, range(20)))
    assert results.count("ok") == 1
    assert results.count("CONVERSION_IN_PROGRESS") == 19
    assert repo.quota_status(alice.id).conversion.used == 1


def test_quota_override_from_the_dashboard_applies(repo, sql, alice) -> None:
    sql.execute(
        "insert into public.quota_overrides (user_id, trainings_per_month) values (%s, 7)",
        (alice.id,),
    )
    quota = repo.quota_status(alice.id)
    assert quota.training.limit == 7
    assert quota.conversion.limit == repo.settings.conversions_per_day


def test_quota_route_lists_every_counted_quota_over_http(sql, alice, services) -> None:
    """/quota shows the instant and text counts beside trainings and conversions, each as
    its reservation left it, and keeps the old top-level `training`/`conversion` shape."""
    sql.execute("select svc_private.reserve_quota(%s, 'text', 50)", (alice.id,))
    sql.execute("select svc_private.reserve_quota(%s, 'text', 50)", (alice.id,))
    sql.execute("select svc_private.reserve_quota(%s, 'instant', 10)", (alice.id,))
    response = alice.client.get("/quota")
    assert response.status_code == 200, response.text
    quota = response.json()
    s = services.settings
    declared = {row[0] for row in sql.execute("select name from svc_private.quotas")}
    assert set(quota["quotas"]) == declared
    text, instant = quota["quotas"]["text"], quota["quotas"]["instant"]
    assert (text["kind"], text["used"], text["limit"]) == ("text", 2, s.texts_per_day)
    assert text["remaining"] == s.texts_per_day - 2
    assert (instant["used"], instant["limit"]) == (1, s.instant_conversions_per_day)
    assert instant["resets_at"].endswith("Z")
    assert quota["quotas"]["training"] == quota["training"]
    assert quota["conversion"]["limit"] == s.conversions_per_day
    assert "used_seconds" in quota["gpu"]


def test_every_declared_quota_has_a_default_setting(sql, settings) -> None:
    """A kind that declares a quota names its setting in Settings.quota_limits; otherwise
    /quota would leave it out."""
    declared = {row[0] for row in sql.execute("select name from svc_private.quotas")}
    assert declared == set(settings.quota_limits)


def test_a_newly_declared_quota_is_listed_without_touching_quota_status(sql, alice) -> None:
    """quota_status reads svc_private.quotas: a new quota appears, with its override-free
    default and an operator's grant, and one whose default is not passed is left out."""
    sql.execute(
        "insert into svc_private.quotas (name, period, override_column) "
        "values ('scratch_kind', 'month', null)"
    )
    try:
        sql.execute(
            "insert into public.quota_grants (user_id, kind, period_start, extra) "
            "values (%s, 'scratch_kind', svc_private.period_start('scratch_kind', now()), 2)",
            (alice.id,),
        )
        sql.execute("select svc_private.reserve_quota(%s, 'scratch_kind', 4)", (alice.id,))
        limits = '{"training": 3, "conversion": 3, "scratch_kind": 4}'
        status = sql.execute(
            "select public.quota_status(%s, %s::jsonb)", (alice.id, limits)
        ).fetchone()[0]
        scratch = status["quotas"]["scratch_kind"]
        assert (scratch["used"], scratch["limit"], scratch["remaining"]) == (1, 6, 5)
        assert set(status["quotas"]) == {"training", "conversion", "scratch_kind"}
    finally:
        for table in ("quota_grants", "usage_counters"):
            sql.execute(f"delete from public.{table} where kind = 'scratch_kind'")
        sql.execute("delete from svc_private.quotas where name = 'scratch_kind'")
