"""A job kind is a table and a declaration: the shared machine (supabase/schemas/30_job_machine.sql)
runs it. A throwaway kind, declared in a scratch schema with its own small table, quota and
finish, is driven through admission, claim, heartbeat (GPU charge), finish, cancel (refund),
the reaper (refund) and an operator's requeue (its own requeue step) with nothing but the
shared functions, and forgotten again; `KIND_SQL` is what such a kind costs."""

from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pipeline.local.stack import LocalStack
from pipeline.repository import Repository

# Everything a new kind writes in SQL: its table (the shared columns and its own), its quota,
# its declaration, its start, its finish and its requeue step.
KIND_SQL = """
create schema {s};
create table {s}.jobs (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  progress jsonb not null default '{{}}'::jsonb,
  worker_call_id text,
  attempt integer not null default 0,
  heartbeat_at timestamptz,
  error_code text,
  error_message text,
  quota_period_start date not null,
  quota_state text not null default 'reserved',
  gpu_seconds double precision not null default 0,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  queued_at timestamptz not null default now(),
  words text,
  requeues integer not null default 0
);
insert into svc_private.quotas (name, period) values ('{kind}', 'day');

create function {s}.requeued(p_job jsonb) returns void language sql as $$
  update {s}.jobs set words = null, requeues = requeues + 1 where id = (p_job ->> 'id')::uuid
$$;

select svc_private.declare_job_kind('{kind}', '{s}.jobs', p_quota => '{kind}',
                                    p_on_requeue => '{s}.requeued');

create function {s}.start(p_user_id uuid, p_profile_id uuid, p_limit integer,
                          p_max_active integer) returns jsonb language plpgsql as $$
declare
  v_period date := svc_private.admit_job('{kind}', p_user_id, p_limit, p_max_active, null);
  v_job jsonb;
begin
  insert into {s}.jobs (user_id, profile_id, quota_period_start, progress)
  values (p_user_id, p_profile_id, v_period, '{{"phase": "queued"}}')
  returning to_jsonb(jobs.*) into v_job;
  return v_job;
end $$;

create function {s}.finish(p_job_id uuid, p_words text, p_attempt integer)
returns jsonb language plpgsql as $$
declare
  v_job jsonb := svc_private.finishing_job('{kind}', p_job_id, p_attempt);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  update {s}.jobs set words = p_words where id = p_job_id;
  return svc_private.succeed_job('{kind}', v_job, '{{"percent": 100}}');
end $$;
"""


@dataclass
class Kind:
    name: str
    schema: str
    user_id: UUID
    profile_id: UUID
    sql: psycopg.Connection

    def call(self, function: str, *args: object) -> dict:
        marks = ", ".join(["%s"] * len(args))
        (row,) = self.sql.execute(f"select {function}({marks})", args).fetchone()
        return row

    def start(self, max_active: int = 3) -> dict:
        return self.call(f"{self.schema}.start", self.user_id, self.profile_id, 5, max_active)

    def used(self) -> int:
        row = self.sql.execute(
            "select used from public.usage_counters where user_id = %s and kind = %s",
            (self.user_id, self.name),
        ).fetchone()
        return row[0] if row else 0

    def silent_for(self, job_id: str, seconds: int) -> None:
        self.sql.execute(
            f"update {self.schema}.jobs set heartbeat_at = now() - make_interval(secs => %s) "
            "where id = %s",
            (seconds, job_id),
        )


@pytest.fixture
def kind(stack: LocalStack, repo: Repository) -> Iterator[Kind]:
    name = "scratch_" + uuid4().hex[:8]
    user_id = stack.ensure_user(f"{uuid4().hex[:12]}@test.local")
    profile = repo.create_profile(user_id, "scratch kind")
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(KIND_SQL.format(s=name, kind=name))
        try:
            yield Kind(name, name, user_id, profile.id, conn)
        finally:
            conn.execute("select svc_private.forget_job_kind(%s)", (name,))
            conn.execute("delete from public.usage_counters where kind = %s", (name,))
            conn.execute(f"drop schema {name} cascade")
            conn.execute("delete from svc_private.quotas where name = %s", (name,))


def test_a_new_kind_costs_under_150_lines_of_sql() -> None:
    lines = [line for line in KIND_SQL.splitlines() if line.strip()]
    assert len(lines) < 150


def test_claim_heartbeat_finish_through_the_shared_machine(kind: Kind) -> None:
    job = kind.start(max_active=1)
    assert job["status"] == "queued" and job["quota_state"] == "reserved"
    assert kind.used() == 1
    with pytest.raises(psycopg.errors.RaiseException) as refused:
        kind.start(max_active=1)
    assert refused.value.diag.message_primary == f"{kind.name.upper()}_IN_PROGRESS"
    assert kind.used() == 1  # the refused start's reservation rolled back with it

    claimed = kind.call("public.claim_job", kind.name, job["id"])
    assert (claimed["status"], claimed["attempt"]) == ("running", 1)
    (in_flight,) = kind.sql.execute(
        "select count(*) from ops.jobs_in_flight where kind = %s and id = %s",
        (kind.name, job["id"]),
    ).fetchone()
    assert in_flight == 1

    kind.silent_for(job["id"], 30)
    beat = kind.call(
        "public.heartbeat_job", kind.name, job["id"], 1, Jsonb({"phase": "working", "percent": 40})
    )
    assert beat["status"] == "running" and beat["progress"]["percent"] == 40
    assert beat["gpu_seconds"] >= 30
    (spent,) = kind.sql.execute(
        "select seconds from public.gpu_spend where user_id = %s", (kind.user_id,)
    ).fetchone()
    assert spent >= 30  # the user's monthly GPU budget is charged as for any kind

    done = kind.call(f"{kind.schema}.finish", job["id"], "la la la", 1)
    assert done["status"] == "succeeded" and done["quota_state"] == "charged"
    assert done["words"] == "la la la" and done["progress"]["percent"] == 100
    assert kind.used() == 1
    again = kind.call(f"{kind.schema}.finish", job["id"], "other", 1)
    assert again["words"] == "la la la"  # a repeated finish returns the job untouched


def test_cancel_and_reaper_refund_by_the_kinds_rule(kind: Kind) -> None:
    canceled = kind.start()
    kind.call("public.claim_job", kind.name, canceled["id"])
    assert kind.used() == 1
    ended = kind.call("public.cancel_job", kind.name, kind.user_id, canceled["id"])
    assert (ended["status"], ended["error_code"]) == ("canceled", "CANCELED")
    assert ended["quota_state"] == "refunded"
    assert kind.used() == 0

    lost = kind.start()
    kind.call("public.claim_job", kind.name, lost["id"])
    kind.silent_for(lost["id"], 3600)
    reaped = kind.call("public.reap_stale_jobs", 600, 86400)
    assert {
        "kind": kind.name,
        "id": lost["id"],
        "status": "failed",
        "error_code": "WORKER_LOST",
    } in reaped
    row = kind.call("public.get_job", kind.name, kind.user_id, lost["id"])
    assert row["quota_state"] == "refunded"
    assert "Your quota was refunded" in row["error_message"]
    assert kind.used() == 0

    requeued = kind.call("ops.requeue_job", kind.name, lost["id"], "worker died", "test")
    assert (requeued["status"], requeued["worker_call_id"]) == ("queued", "requeued")
    assert requeued["quota_state"] == "reserved" and requeued["requeues"] == 1
    assert kind.used() == 1
    taken = kind.call("public.take_requeued_jobs", 500)
    assert {"kind": kind.name, "id": lost["id"]} in taken


def test_a_table_without_the_shared_columns_is_refused(kind: Kind) -> None:
    half = f"{kind.schema}.half"
    kind.sql.execute(f"create table {half} (id uuid primary key, user_id uuid)")
    with pytest.raises(psycopg.errors.RaiseException) as refused:
        kind.sql.execute("select svc_private.declare_job_kind(%s, %s)", ("half_" + kind.name, half))
    assert refused.value.diag.message_primary == "INVALID_ARGUMENT"
    assert "status" in refused.value.diag.message_hint
    (declared,) = kind.sql.execute(
        "select count(*) from svc_private.job_kinds where kind = %s", ("half_" + kind.name,)
    ).fetchone()
    assert declared == 0
