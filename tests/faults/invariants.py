"""What must hold after a fault run, read from the database and the bucket directly (and once
through the API, which must agree). Each check returns the rows that break it, in words, so
a run's report says what went wrong and where.

The rules (supabase/schemas/30_job_machine.sql): a job that succeeds is charged its quota, a
job that ends any other way has its reservation refunded, a live job holds it; every GPU
second a job is charged is added to its person's monthly spend; a ready file, a model and a
succeeded conversion's output have their object; an object no row claims is an orphan that
retention deletes after `VC_ORPHAN_GRACE_SECONDS` (`unclaimed_object_keys` decides which).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from pipeline.storage import Storage

JOB_TABLES = {
    "training": "training_jobs",
    "conversion": "conversion_jobs",
    "separation": "separation_jobs",
}
COUNTED = ("training", "conversion")  # separations are free


@dataclass
class Findings:
    broken: dict[str, list[str]] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)  # within the orphan policy: reported only

    def add(self, invariant: str, problems: list[str]) -> None:
        if problems:
            self.broken.setdefault(invariant, []).extend(problems)

    @property
    def ok(self) -> bool:
        return not self.broken


def _rows(conn: psycopg.Connection[Any], query: str, *args: Any) -> list[tuple[Any, ...]]:
    return conn.execute(query, args).fetchall()


def check_jobs_settled(conn: psycopg.Connection[Any], live_job_ids: set[str]) -> list[str]:
    """Every job terminal, or running with a worker process alive for it."""
    problems = []
    for kind, table in JOB_TABLES.items():
        for job_id, status in _rows(
            conn, f"select id, status from public.{table} where status not in"
            " ('succeeded', 'failed', 'canceled')"
        ):  # fmt: skip
            if status == "running" and str(job_id) in live_job_ids:
                continue
            problems.append(f"{kind} {job_id} is {status} with no live worker")
    return problems


def check_single_success(conn: psycopg.Connection[Any]) -> list[str]:
    """A training that succeeded made exactly one model; none made one otherwise; a succeeded
    conversion has one output."""
    problems = [
        f"training {job} is {status} with {models} model(s)"
        for job, status, models in _rows(
            conn,
            "select t.id, t.status, count(m.id) from public.training_jobs t"
            " left join public.model_versions m on m.training_job_id = t.id group by t.id"
            " having (t.status = 'succeeded') <> (count(m.id) = 1)",
        )
    ]
    problems += [
        f"conversion {job} succeeded without an output"
        for (job,) in _rows(
            conn,
            "select id from public.conversion_jobs where status = 'succeeded'"
            " and output_key is null",
        )
    ]
    return problems


def check_quotas(conn: psycopg.Connection[Any]) -> list[str]:
    """Per job: charged iff succeeded, reserved iff live, refunded otherwise; per person: the
    counter equals the jobs that hold a quota in its period."""
    problems = []
    for kind in COUNTED:
        table = JOB_TABLES[kind]
        problems += [
            f"{kind} {job} is {status} but its quota is {state}"
            for job, status, state in _rows(
                conn,
                f"select id, status, quota_state from public.{table} where quota_state <>"
                " case status when 'succeeded' then 'charged' when 'failed' then 'refunded'"
                " when 'canceled' then 'refunded' else 'reserved' end",
            )
        ]
        problems += [
            f"{kind} counter of {user} says {used}, its jobs hold {held}"
            for user, used, held in _rows(
                conn,
                f"select u.user_id, u.used, (select count(*) from public.{table} j"
                "   where j.user_id = u.user_id and j.quota_period_start = u.period_start"
                "     and j.quota_state in ('reserved', 'charged'))"
                " from public.usage_counters u where u.kind = %s",
                kind,
            )
            if used != held
        ]
    return problems


def check_gpu_spend(conn: psycopg.Connection[Any]) -> list[str]:
    """The month's spend equals the seconds charged to the person's jobs (all kinds)."""
    union = " union all ".join(
        f"select user_id, gpu_seconds from public.{t}" for t in JOB_TABLES.values()
    )
    return [
        f"GPU spend of {user} is {spent:.2f}s, its jobs were charged {charged:.2f}s"
        for user, spent, charged in _rows(
            conn,
            f"select s.user_id, s.seconds, coalesce(sum(j.gpu_seconds), 0)"
            f" from public.gpu_spend s left join ({union}) j on j.user_id = s.user_id"
            " group by s.user_id, s.seconds",
        )
        if abs(spent - charged) > 0.01
    ]


def expected_objects(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(what, key) for every object a row says exists."""
    found = [
        (f"ready file {i}", key)
        for i, key in _rows(
            conn,
            "select id, object_key from public.dataset_files where status = 'ready'"
            " and object_removed_at is null",
        )
    ]
    for i, model, config in _rows(
        conn, "select id, model_key, config_key from public.model_versions"
    ):
        found += [(f"model {i}", model), (f"model config {i}", config)]
    found += [
        (f"conversion output {i}", key)
        for i, key in _rows(
            conn,
            "select id, output_key from public.conversion_jobs where status = 'succeeded'"
            " and files_removed_at is null",
        )
    ]
    return found


def check_objects(
    conn: psycopg.Connection[Any],
    storage: Storage,
    db_call: Any,
    findings: Findings,
    orphan_grace_seconds: int,
) -> None:
    missing = [f"{what}: {key}" for what, key in expected_objects(conn) if not storage.head(key)]
    findings.add("every ready row has its object", missing)
    listed = {obj["Key"]: obj["LastModified"] for obj in _list(storage)}
    pending = {k for (k,) in _rows(conn, "select object_key from public.object_deletions")}
    unclaimed = [k for k in db_call("unclaimed_object_keys", keys=list(listed)) if k not in pending]
    findings.orphans.extend(unclaimed)
    # an orphan is within the policy while retention would still leave it alone
    too_old = datetime.now(UTC) - timedelta(seconds=orphan_grace_seconds)
    findings.add(
        "every object belongs to a row or is within the orphan policy",
        [f"{k} (since {listed[k]:%H:%M:%S})" for k in unclaimed if listed[k] < too_old],
    )


def _list(storage: Storage) -> list[dict[str, Any]]:
    paginator = storage._s3.get_paginator("list_objects_v2")
    found: list[dict[str, Any]] = []
    for page in paginator.paginate(Bucket=storage.bucket, Prefix="vc/"):
        found.extend(page.get("Contents", []))
    return found


def check_api_view(conn: psycopg.Connection[Any], api: str, tokens: dict[str, str]) -> list[str]:
    """What each person's page reads (jobs and quota) equals the rows."""
    problems = []
    for user_id, token in tokens.items():
        client = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"})
        with client:
            for kind in ("training", "conversion"):
                for job, status in _rows(
                    conn,
                    f"select id, status from public.{JOB_TABLES[kind]} where user_id = %s",
                    user_id,
                ):
                    seen = client.get(f"/{kind}s/{job}")
                    if seen.status_code != 200 or seen.json()["status"] != status:
                        problems.append(f"{kind} {job}: API {seen.status_code} {seen.text[:120]}")
            quota = client.get("/quota").json()
            for kind in COUNTED:
                row = conn.execute(
                    "select used from public.usage_counters where user_id = %s and kind = %s",
                    (user_id, kind),
                ).fetchone()
                used = row[0] if row else 0
                if quota[kind]["used"] != used:
                    problems.append(
                        f"{kind} quota of {user_id}: API {quota[kind]['used']}, DB {used}"
                    )
    return problems


def check_all(
    database_url: str,
    storage: Storage,
    db_call: Any,
    api: str,
    tokens: dict[str, str],
    live_job_ids: set[str],
    orphan_grace_seconds: int,
) -> Findings:
    findings = Findings()
    with psycopg.connect(database_url, autocommit=True) as conn:
        findings.add("every job terminal or running with a live worker",
                     check_jobs_settled(conn, live_job_ids))  # fmt: skip
        findings.add("no job ran twice to success", check_single_success(conn))
        findings.add("counted quotas equal the jobs that hold them", check_quotas(conn))
        findings.add("GPU spend equals what jobs were charged", check_gpu_spend(conn))
        check_objects(conn, storage, db_call, findings, orphan_grace_seconds)
        findings.add("the API agrees with the database", check_api_view(conn, api, tokens))
    return findings
