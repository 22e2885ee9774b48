-- One job machine (issue 24): claim, heartbeat (with the GPU charge and budget), progress,
-- finish, fail and cancel with the refund rule, the reaper, requeue, retry and the operators'
-- views are written once and read a job kind's declaration (svc_private.job_kinds: its table,
-- its quota or none, its refund rule, its budget rule, its active limit, its requeue step);
-- trainings, conversions and separations are declared on it with their behaviour unchanged.
-- Counted quotas are declared too (svc_private.quotas), so a new kind may take a new one.
-- Written from supabase/schemas/ (where each object now lives); safe to run twice.

set check_function_bodies = off;

-- Quotas, declared (10_tables.sql) --------------------------------------------------------

-- The counted quotas a job kind may take a unit of (svc_private.job_kinds.quota): each counts
-- per UTC month or day, and an operator's per-user limit sits in the named column of
-- `quota_overrides` (null: none).
create table if not exists svc_private.quotas (
  name text primary key check (name ~ '^[a-z][a-z0-9_]*$'),
  period text not null check (period in ('day', 'month')),
  override_column text
);
revoke all on table svc_private.quotas from public, anon, authenticated;
insert into svc_private.quotas (name, period, override_column)
values ('training', 'month', 'trainings_per_month'), ('conversion', 'day', 'conversions_per_day')
on conflict (name) do nothing;

-- Counters and grants name a declared quota instead of a fixed list.
alter table public.usage_counters drop constraint if exists usage_counters_kind_check;
alter table public.usage_counters drop constraint if exists usage_counters_kind_fkey;
alter table public.usage_counters add constraint usage_counters_kind_fkey
  foreign key (kind) references svc_private.quotas (name);
alter table public.quota_grants drop constraint if exists quota_grants_kind_check;
alter table public.quota_grants drop constraint if exists quota_grants_kind_fkey;
alter table public.quota_grants add constraint quota_grants_kind_fkey
  foreign key (kind) references svc_private.quotas (name);

-- The job machine (30_job_machine.sql) ----------------------------------------------------

-- One row a job kind: what the shared machine needs to know of it.
create table if not exists svc_private.job_kinds (
  kind text primary key check (kind ~ '^[a-z][a-z0-9_]*$'),
  -- Its table: the shared columns (svc_private.job_columns) plus whatever the kind needs.
  job_table regclass not null unique,
  -- The counted quota a job takes a unit of at admission (svc_private.quotas), or null.
  quota text references svc_private.quotas (name),
  -- A job that ends failed or canceled: 'refund' gives its unit back, 'keep' counts it.
  refund text not null default 'refund' check (refund in ('refund', 'keep')),
  -- 'gpu_budget': its GPU time counts towards the user's monthly budget, which refuses and
  -- stops it once spent; 'free': the time is recorded on the job only.
  budget text not null default 'gpu_budget' check (budget in ('gpu_budget', 'free')),
  -- How the active limit (a setting the service passes) applies: 'refuse' — admission refuses
  -- while the user has that many live jobs of the kind (<KIND>_IN_PROGRESS with
  -- `busy_message`); 'in_line' — a queued job waits in line until a slot frees and is handed
  -- out (svc_private.hand_out sets its worker_call_id); waiting in line is not being lost.
  active_limit text not null default 'refuse' check (active_limit in ('refuse', 'in_line')),
  busy_message text,
  -- The kind's own step when a job is queued again (operator's requeue, a person's retry):
  -- a function taking the job (jsonb) that may refuse (raise) or reset the kind's columns.
  on_requeue regproc
);

revoke all on table svc_private.job_kinds from public, anon, authenticated;

-- The columns every job table has, with their types: the machine reads and writes them by
-- name, and `svc_private.jobs` shows them for every kind. `quota_period_start` is needed only
-- by a kind with a quota; `upload_expires_at` (optional) lets the reaper expire an upload.
create or replace function svc_private.job_columns()
returns text[] language sql immutable as $$
  select array['id uuid', 'user_id uuid', 'profile_id uuid', 'status text', 'progress jsonb',
               'worker_call_id text', 'attempt integer', 'heartbeat_at timestamptz',
               'error_code text', 'error_message text', 'quota_state text',
               'quota_period_start date', 'gpu_seconds double precision',
               'created_at timestamptz', 'started_at timestamptz', 'finished_at timestamptz',
               'queued_at timestamptz']
$$;

-- Declares (or re-declares) a job kind: checks its table has the shared columns, records the
-- declaration, stamps `queued_at` on its rows and adds it to `svc_private.jobs`. Run it in
-- the kind's file after its table; arguments as in `svc_private.job_kinds`.
create or replace function svc_private.declare_job_kind(
  p_kind text, p_table regclass, p_quota text default null, p_refund text default 'refund',
  p_budget text default 'gpu_budget', p_active_limit text default 'refuse',
  p_busy_message text default null, p_on_requeue regproc default null
) returns void language plpgsql as $$
declare
  v_missing text;
begin
  select string_agg(split_part(c, ' ', 1), ', ') into v_missing
    from unnest(svc_private.job_columns()) c
   where (split_part(c, ' ', 1) <> 'quota_period_start' or p_quota is not null)
     and not exists (select 1 from pg_attribute a where a.attrelid = p_table
                       and a.attname = split_part(c, ' ', 1) and a.attnum > 0
                       and not a.attisdropped);
  if v_missing is not null then
    perform svc_private.raise_error('INVALID_ARGUMENT',
      format('The table of job kind %s lacks the shared columns: %s.', p_kind, v_missing),
      jsonb_build_object('kind', p_kind, 'table', p_table::text));
  end if;
  insert into svc_private.job_kinds
    (kind, job_table, quota, refund, budget, active_limit, busy_message, on_requeue)
  values (p_kind, p_table, p_quota, p_refund, p_budget, p_active_limit, p_busy_message,
          p_on_requeue)
  on conflict (kind) do update
     set job_table = excluded.job_table, quota = excluded.quota, refund = excluded.refund,
         budget = excluded.budget, active_limit = excluded.active_limit,
         busy_message = excluded.busy_message, on_requeue = excluded.on_requeue;
  execute format('create or replace trigger stamp_queued_at before insert or update of status '
                 'on %s for each row execute function svc_private.stamp_queued_at()', p_table);
  perform svc_private.build_jobs_view();
end $$;

-- Retires a job kind: its declaration goes and `svc_private.jobs` no longer reads its table
-- (the table, its trigger and any quota are the caller's to drop). A scratch kind
-- (tests/test_job_kinds.py) is forgotten so before its schema is dropped.
create or replace function svc_private.forget_job_kind(p_kind text)
returns void language plpgsql as $$
begin
  delete from svc_private.job_kinds where kind = p_kind;
  perform svc_private.build_jobs_view();
end $$;

-- `svc_private.jobs`: every job of every declared kind in the shared columns, one union, made
-- anew by each declaration (in the order of the kinds' names, so the same kinds make the
-- same view). The machine's sweeps (reaper, requeued launches, erasure) and the operators'
-- views read it.
create or replace function svc_private.build_jobs_view()
returns void language plpgsql as $$
declare
  v_parts text;
begin
  select string_agg(format('select %L::text as kind, %s from %s j', k.kind,
           (select string_agg(case when split_part(c, ' ', 1) = 'quota_period_start'
                                        and k.quota is null
                                   then format('null::%s as %I', split_part(c, ' ', 2),
                                               split_part(c, ' ', 1))
                                   else format('j.%I::%s as %I', split_part(c, ' ', 1),
                                               substr(c, strpos(c, ' ') + 1),
                                               split_part(c, ' ', 1)) end, ', ')
              from unnest(svc_private.job_columns()) c),
           k.job_table), ' union all ' order by k.kind)
    into v_parts from svc_private.job_kinds k;
  execute 'create or replace view svc_private.jobs as ' || coalesce(v_parts, format(
    'select null::text as kind, %s where false',
    (select string_agg(format('null::%s as %I', substr(c, strpos(c, ' ') + 1),
                              split_part(c, ' ', 1)), ', ')
       from unnest(svc_private.job_columns()) c)));
end $$;

-- The table of a job kind, schema-qualified: the one place a kind's name becomes a table.
create or replace function svc_private.job_table(p_kind text)
returns text language plpgsql stable as $$
declare
  v_table text;
begin
  select format('%I.%I', n.nspname, c.relname) into v_table
    from svc_private.job_kinds k join pg_class c on c.oid = k.job_table
    join pg_namespace n on n.oid = c.relnamespace
   where k.kind = p_kind;
  if v_table is not null then
    return v_table;
  end if;
  perform svc_private.raise_error('INVALID_ARGUMENT', 'Unknown job kind.',
                                  jsonb_build_object('kind', p_kind));
end $$;

-- A kind's declaration; an unknown kind raises as `job_table` does.
create or replace function svc_private.job_kind(p_kind text)
returns svc_private.job_kinds language plpgsql stable as $$
declare
  v_kind svc_private.job_kinds;
begin
  select * into v_kind from svc_private.job_kinds where kind = p_kind;
  if not found then
    perform svc_private.job_table(p_kind);
  end if;
  return v_kind;
end $$;

create or replace function svc_private.lock_job(p_kind text, p_job_id uuid)
returns jsonb language plpgsql as $$
declare
  v_job jsonb;
begin
  execute format('select to_jsonb(j) from %s j where j.id = $1 for update',
                 svc_private.job_table(p_kind))
    into v_job using p_job_id;
  if v_job is null then
    perform svc_private.raise_error('NOT_FOUND', 'That job does not exist.',
                                    jsonb_build_object('kind', p_kind, 'id', p_job_id));
  end if;
  return v_job;
end $$;

-- Writes the lifecycle columns every job table shares from `p_job || p_patch`.
create or replace function svc_private.update_job(p_kind text, p_job jsonb, p_patch jsonb)
returns jsonb language plpgsql as $$
declare
  v_job jsonb;
begin
  execute format(
    'update %1$s j
        set status = r.status, progress = r.progress, worker_call_id = r.worker_call_id,
            attempt = r.attempt, heartbeat_at = r.heartbeat_at, error_code = r.error_code,
            error_message = r.error_message, quota_state = r.quota_state,
            started_at = r.started_at, finished_at = r.finished_at
       from jsonb_populate_record(null::%1$s, $1) r
      where j.id = r.id
      returning to_jsonb(j)', svc_private.job_table(p_kind))
    into v_job using p_job || p_patch;
  return v_job;
end $$;

-- Ends a non-terminal job as failed or canceled and, by the kind's refund rule, gives its
-- reservation back ('refund') or counts it ('keep'). It charges the GPU time since the last
-- heartbeat when a worker fails or a user cancels (a reaped job's worker is gone: nothing more
-- to charge).
create or replace function svc_private.end_job(
  p_kind text, p_job jsonb, p_status text, p_code text, p_message text
) returns jsonb language plpgsql as $$
declare
  v_kind svc_private.job_kinds := svc_private.job_kind(p_kind);
  v_reserved boolean := p_job ->> 'quota_state' = 'reserved';
begin
  if p_code not in ('WORKER_LOST', 'NOT_STARTED', 'UPLOAD_EXPIRED') then
    perform svc_private.charge_gpu(p_kind, p_job);
  end if;
  if v_reserved and v_kind.refund = 'refund' then
    perform svc_private.refund_quota((p_job ->> 'user_id')::uuid, v_kind.quota,
                                     (p_job ->> 'quota_period_start')::date);
  end if;
  return svc_private.update_job(p_kind, p_job, jsonb_build_object(
    'status', p_status, 'error_code', p_code, 'error_message', p_message,
    'finished_at', now(),
    'quota_state', case when not v_reserved then p_job ->> 'quota_state'
                        when v_kind.refund = 'refund' then 'refunded' else 'charged' end,
    'progress', p_job -> 'progress' || jsonb_build_object('phase', p_status)));
end $$;

-- Why a live job counts as abandoned, or null while it is healthy.
create or replace function svc_private.stale_reason(
  p_kind text, p_job jsonb, p_heartbeat_timeout_sec integer, p_queued_timeout_sec integer
) returns text language sql stable as $$
  select case
    when p_job ->> 'status' = 'awaiting_upload'
         and (p_job ->> 'upload_expires_at')::timestamptz < now() then 'UPLOAD_EXPIRED'
    when p_job ->> 'status' = 'queued'
         -- a job of an in-line kind never handed out waits for a slot; the cron hands it
         -- out (svc_private.hand_out), so it is not lost
         and not ((svc_private.job_kind(p_kind)).active_limit = 'in_line'
                  and p_job ->> 'worker_call_id' is null)
         and coalesce(p_job ->> 'queued_at', p_job ->> 'created_at')::timestamptz
             < now() - make_interval(secs => p_queued_timeout_sec) then 'NOT_STARTED'
    when p_job ->> 'status' = 'running'
         and coalesce(p_job ->> 'heartbeat_at', p_job ->> 'started_at')::timestamptz
             < now() - make_interval(secs => p_heartbeat_timeout_sec) then 'WORKER_LOST'
  end
$$;

create or replace function public.get_job(p_kind text, p_user_id uuid, p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_job jsonb;
begin
  execute format('select to_jsonb(j) from %s j where j.id = $1 and j.user_id = $2',
                 svc_private.job_table(p_kind))
    into v_job using p_job_id, p_user_id;
  if v_job is null then
    perform svc_private.raise_error('NOT_FOUND', 'That job does not exist.',
                                    jsonb_build_object('kind', p_kind, 'id', p_job_id));
  end if;
  return v_job;
end $$;

create or replace function public.list_jobs(
  p_kind text, p_user_id uuid, p_profile_id uuid default null, p_limit integer default 50
) returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_jobs jsonb;
begin
  execute format(
    'select coalesce(jsonb_agg(to_jsonb(j) order by j.created_at desc), ''[]''::jsonb)
       from (select * from %s where user_id = $1 and ($2::uuid is null or profile_id = $2)
              order by created_at desc limit $3) j', svc_private.job_table(p_kind))
    into v_jobs using p_user_id, p_profile_id, least(greatest(p_limit, 1), 200);
  return v_jobs;
end $$;

create or replace function public.get_job_by_id(p_kind text, p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_job jsonb;
begin
  execute format('select to_jsonb(j) from %s j where j.id = $1',
                 svc_private.job_table(p_kind))
    into v_job using p_job_id;
  return v_job;
end $$;

-- Progress and liveness in one write; the returned status tells the worker to stop when the job
-- was canceled meanwhile. Each heartbeat charges the time since the last one; a user whose
-- budget is spent has the job failed with GPU_BUDGET_EXHAUSTED, which the worker reads from the
-- returned row and stops on.
create or replace function public.heartbeat_job(
  p_kind text, p_job_id uuid, p_attempt integer, p_progress jsonb
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.worker_job(p_kind, p_job_id, p_attempt);
  v_spent double precision;
  v_limit integer;
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if v_job ->> 'status' <> 'running' then
    perform svc_private.invalid_transition(p_kind, v_job, 'running');
  end if;
  v_spent := svc_private.charge_gpu(p_kind, v_job);
  v_job := svc_private.update_job(p_kind, v_job, jsonb_build_object(
    'progress', coalesce(p_progress, '{}'::jsonb), 'heartbeat_at', now()));
  v_limit := svc_private.server_gpu_limit((v_job ->> 'user_id')::uuid);
  -- a kind outside the budget is charged nothing (null)
  if v_limit is not null and v_spent >= v_limit then
    v_job := svc_private.end_job(p_kind, v_job, 'failed', 'GPU_BUDGET_EXHAUSTED',
      format('This month''s %s minutes of GPU time are used up, so the job stopped.',
             round(v_limit / 60.0, 1)));
  end if;
  return v_job;
end $$;

-- Fails jobs whose worker went silent or never started, cancels jobs whose upload never came,
-- and refunds each (by its kind's rule). Candidates are re-checked under the row lock, so a job
-- that moved on meanwhile is left alone; they are locked by kind, then id (the lock order). A
-- kind with nothing refunded gets a message that says how to try again instead.
create or replace function public.reap_stale_jobs(
  p_heartbeat_timeout_sec integer, p_queued_timeout_sec integer
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  r record;
  v_job jsonb;
  v_reason text;
  v_refunds boolean;
  v_reaped jsonb := '[]'::jsonb;
begin
  for r in
    select j.kind, j.id, k.quota is not null and k.refund = 'refund' as refunds
      from svc_private.jobs j join svc_private.job_kinds k on k.kind = j.kind
     where j.status in ('awaiting_upload', 'queued', 'running')
     order by j.kind, j.id
  loop
    v_job := svc_private.lock_job(r.kind, r.id);
    v_reason := svc_private.stale_reason(r.kind, v_job, p_heartbeat_timeout_sec,
                                         p_queued_timeout_sec);
    v_refunds := r.refunds;
    if v_reason = 'UPLOAD_EXPIRED' then
      v_job := svc_private.end_job(r.kind, v_job, 'canceled', v_reason,
        'The input was not uploaded before its upload link expired.');
    elsif v_reason = 'NOT_STARTED' then
      v_job := svc_private.end_job(r.kind, v_job, 'failed', v_reason,
        case when v_refunds
             then 'The job waited too long for a worker. Your quota was refunded; please try again.'
             else format('The %s waited too long for a worker. Try again.', r.kind) end);
    elsif v_reason = 'WORKER_LOST' then
      v_job := svc_private.end_job(r.kind, v_job, 'failed', v_reason,
        case when v_refunds
             then 'The worker stopped responding. Your quota was refunded; please try again.'
             else format('The %s''s worker stopped responding. Try again.', r.kind) end);
    end if;
    if v_reason is not null then
      v_reaped := v_reaped || jsonb_build_object('kind', r.kind, 'id', r.id,
                                                 'status', v_job ->> 'status',
                                                 'error_code', v_reason);
    end if;
  end loop;
  return v_reaped;
end $$;

-- Requeued jobs waiting for a worker: the cron takes each once (marking it so a second run
-- cannot take it again) and launches it as the API would.
create or replace function public.take_requeued_jobs(p_limit integer default 50)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_taken jsonb := '[]'::jsonb;
  v_rows integer;
  r record;
begin
  for r in
    select kind, id from svc_private.jobs
     where status = 'queued' and worker_call_id = 'requeued'
     order by kind, id
     limit least(greatest(p_limit, 1), 500)
  loop
    execute format('update %s set worker_call_id = ''dispatching''
                     where id = $1 and status = ''queued'' and worker_call_id = ''requeued''',
                   svc_private.job_table(r.kind)) using r.id;
    get diagnostics v_rows = row_count;  -- `execute` leaves FOUND as it was
    if v_rows > 0 then
      v_taken := v_taken || jsonb_build_object('kind', r.kind, 'id', r.id);
    end if;
  end loop;
  return v_taken;
end $$;

-- Every live job of a user (or of one profile), locked by kind, then id, before any is ended.
create or replace function svc_private.lock_live_jobs(p_user_id uuid, p_profile_id uuid)
returns void language plpgsql as $$
declare
  k record;
begin
  for k in select kind from svc_private.job_kinds order by kind loop
    execute format('select 1 from %s where user_id = $1 and ($2::uuid is null or profile_id = $2)
                       and status in (''awaiting_upload'', ''queued'', ''running'')
                     order by id for update', svc_private.job_table(k.kind))
      using p_user_id, p_profile_id;
  end loop;
end $$;

-- What every kind's start checks, in one order: the GPU budget not spent (a kind in the
-- budget), a unit of its quota reserved (a kind with one; returns its period, else null), and
-- for a 'refuse' kind fewer than p_max_active live jobs of the kind (<KIND>_IN_PROGRESS). The
-- count cannot race another start: the reserved counter row, or for a kind without a quota
-- the user's slot lock, is held until commit.
create or replace function svc_private.admit_job(
  p_kind text, p_user_id uuid, p_default_limit integer, p_max_active integer,
  p_gpu_seconds_per_month integer
) returns date language plpgsql as $$
declare
  v_kind svc_private.job_kinds := svc_private.job_kind(p_kind);
  v_period date;
  v_live integer;
begin
  if v_kind.budget = 'gpu_budget' then
    perform svc_private.require_gpu_budget(p_user_id, p_gpu_seconds_per_month);
  end if;
  if v_kind.quota is not null then
    v_period := svc_private.reserve_quota(p_user_id, v_kind.quota, p_default_limit);
  else
    perform svc_private.slot_lock(p_kind, p_user_id);
  end if;
  if v_kind.active_limit = 'refuse' then
    v_live := svc_private.live_jobs(p_kind, p_user_id);
    if v_live >= p_max_active then
      perform svc_private.raise_error(upper(p_kind) || '_IN_PROGRESS',
        coalesce(v_kind.busy_message, format(
          'A %s is already in progress for your account. Wait for it or cancel it.', p_kind)),
        jsonb_build_object('max_active', p_max_active));
    end if;
  end if;
  return v_period;
end $$;

-- A user's live jobs of a kind (not yet ended: awaiting upload, queued or running).
create or replace function svc_private.live_jobs(p_kind text, p_user_id uuid)
returns integer language plpgsql stable as $$
declare
  v_count integer;
begin
  execute format('select count(*)::integer from %s where user_id = $1
                    and status in (''awaiting_upload'', ''queued'', ''running'')',
                 svc_private.job_table(p_kind))
    into v_count using p_user_id;
  return v_count;
end $$;

-- One taker at a time per person and kind, so two starts (or hand-outs) cannot both see a
-- free slot.
create or replace function svc_private.slot_lock(p_kind text, p_user_id uuid)
returns void language sql as $$
  select pg_advisory_xact_lock(hashtextextended(format('svc:%ss:%s', p_kind, p_user_id), 0))
$$;

-- Jobs of an in-line kind a person has handed out or running (the active limit counts these;
-- the rest wait in line).
create or replace function svc_private.active_jobs(p_kind text, p_user_id uuid, p_except uuid)
returns integer language plpgsql stable as $$
declare
  v_count integer;
begin
  execute format('select count(*)::integer from %s where user_id = $1
                    and id is distinct from $2
                    and (status = ''running'' or (status = ''queued''
                                                 and worker_call_id is not null))',
                 svc_private.job_table(p_kind))
    into v_count using p_user_id, p_except;
  return v_count;
end $$;

-- Hands a queued job of an in-line kind out for launching exactly once (a repeated call finds
-- it taken), while its person has a free slot (p_max_active; otherwise it waits in line). A
-- user whose GPU budget (the server's) is spent gets the job failed with GPU_BUDGET_EXHAUSTED
-- and p_budget_message (its %s: the minutes, then the reset time). Returns
-- {"taken": bool, "job": row}.
create or replace function svc_private.hand_out(
  p_kind text, p_job_id uuid, p_max_active integer, p_budget_message text
) returns jsonb language plpgsql as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
  v_usage jsonb;
begin
  if v_job ->> 'status' <> 'queued' or v_job ->> 'worker_call_id' is not null then
    return jsonb_build_object('taken', false, 'job', v_job);
  end if;
  v_usage := svc_private.gpu_usage((v_job ->> 'user_id')::uuid,
                                  (select b.seconds_per_month from svc_private.gpu_budget b));
  if (svc_private.job_kind(p_kind)).budget = 'gpu_budget'
     and v_usage ->> 'limit_seconds' is not null
     and (v_usage ->> 'remaining_seconds')::double precision <= 0 then
    v_job := svc_private.end_job(p_kind, v_job, 'failed', 'GPU_BUDGET_EXHAUSTED',
      format(p_budget_message, round((v_usage ->> 'limit_seconds')::numeric / 60, 1),
             to_char((v_usage ->> 'resets_at')::timestamptz at time zone 'UTC',
                     'YYYY-MM-DD HH24:MI')));
    return jsonb_build_object('taken', false, 'job', v_job);
  end if;
  perform svc_private.slot_lock(p_kind, (v_job ->> 'user_id')::uuid);
  if svc_private.active_jobs(p_kind, (v_job ->> 'user_id')::uuid, p_job_id)
     >= greatest(p_max_active, 1) then
    return jsonb_build_object('taken', false, 'job', v_job);
  end if;
  v_job := svc_private.update_job(p_kind, v_job,
                                  jsonb_build_object('worker_call_id', 'dispatching'));
  return jsonb_build_object('taken', true, 'job', v_job);
end $$;

-- A worker's finish, first half: its job (fenced by attempt, as every report), which must be
-- running. A finished job comes back as it is; the caller returns it untouched:
--   v_job := svc_private.finishing_job('kind', p_job_id, p_attempt);
--   if svc_private.is_terminal(v_job ->> 'status') then return v_job; end if;
create or replace function svc_private.finishing_job(
  p_kind text, p_job_id uuid, p_attempt integer
) returns jsonb language plpgsql as $$
declare
  v_job jsonb := svc_private.worker_job(p_kind, p_job_id, p_attempt);
begin
  if not svc_private.is_terminal(v_job ->> 'status') and v_job ->> 'status' <> 'running' then
    perform svc_private.invalid_transition(p_kind, v_job, 'succeeded');
  end if;
  return v_job;
end $$;

-- A worker's finish, second half, once the kind has recorded its results: charges the GPU
-- time since the last heartbeat, counts the reserved unit and marks the job succeeded
-- (p_progress is merged into its progress).
create or replace function svc_private.succeed_job(
  p_kind text, p_job jsonb, p_progress jsonb default '{}'::jsonb
) returns jsonb language plpgsql as $$
begin
  perform svc_private.charge_gpu(p_kind, p_job);
  return svc_private.update_job(p_kind, p_job, jsonb_build_object(
    'status', 'succeeded', 'finished_at', now(),
    'quota_state', case when p_job ->> 'quota_state' = 'reserved' then 'charged'
                        else p_job ->> 'quota_state' end,
    'progress', p_job -> 'progress' || jsonb_build_object('phase', 'succeeded')
                || coalesce(p_progress, '{}'::jsonb)));
end $$;

-- Back to `queued` (an operator's requeue, a person's retry): the kind's own step first
-- (`on_requeue`: it may refuse), then the lifecycle columns are cleared and `p_patch` (the
-- caller's worker_call_id, progress, quota columns) written.
create or replace function svc_private.requeue(p_kind text, p_job jsonb, p_patch jsonb)
returns jsonb language plpgsql as $$
declare
  v_hook regproc := (svc_private.job_kind(p_kind)).on_requeue;
begin
  if v_hook is not null then
    execute (select format('select %I.%I($1)', n.nspname, p.proname)
               from pg_proc p join pg_namespace n on n.oid = p.pronamespace
              where p.oid = v_hook)
      using p_job;
  end if;
  return svc_private.update_job(p_kind, p_job, jsonb_build_object(
    'status', 'queued', 'error_code', null, 'error_message', null, 'finished_at', null,
    'heartbeat_at', null) || p_patch);
end $$;

select svc_private.build_jobs_view();

-- Replaced by the kind-aware stale_reason and svc_private.active_jobs.
drop function if exists svc_private.stale_reason(jsonb, integer, integer);
drop function if exists svc_private.active_separations(uuid, uuid);

-- Quotas and spend (40_quotas_and_spend.sql) ----------------------------------------------

-- `p_kind` names a quota (svc_private.quotas); its period is a UTC month or day.
create or replace function svc_private.period_start(p_kind text, p_at timestamptz)
returns date language sql stable as $$
  select case (select q.period from svc_private.quotas q where q.name = p_kind)
    when 'month' then date_trunc('month', p_at at time zone 'UTC')::date
    else (p_at at time zone 'UTC')::date
  end
$$;

create or replace function svc_private.period_end(p_kind text, p_start date)
returns timestamptz language sql stable as $$
  select (case (select q.period from svc_private.quotas q where q.name = p_kind)
            when 'month' then p_start + interval '1 month'
            else p_start + interval '1 day' end) at time zone 'UTC'
$$;

-- A user's limit for a quota: their override (the quota's column of `quota_overrides`) or the
-- default, plus an operator's grant for the current period.
create or replace function svc_private.quota_limit(p_user_id uuid, p_kind text, p_default integer)
returns integer language sql stable as $$
  select coalesce(
    (select (to_jsonb(o) ->> q.override_column)::integer
       from public.quota_overrides o, svc_private.quotas q
      where o.user_id = p_user_id and q.name = p_kind),
    p_default)
  + coalesce((select g.extra from public.quota_grants g
               where g.user_id = p_user_id and g.kind = p_kind
                 and g.period_start = svc_private.period_start(p_kind, now())), 0)
$$;

-- One conditional update takes a unit: it row-locks the counter, rolls a stale period itself
-- (so a late cron can neither block nor over-grant) and succeeds only while a unit is left.
create or replace function svc_private.reserve_quota(p_user_id uuid, p_kind text, p_default integer)
returns date language plpgsql as $$
declare
  v_period date := svc_private.period_start(p_kind, now());
  v_limit integer := svc_private.quota_limit(p_user_id, p_kind, p_default);
  v_usage jsonb;
begin
  insert into public.usage_counters (user_id, kind, period_start, used)
  values (p_user_id, p_kind, v_period, 0)
  on conflict (user_id, kind) do nothing;

  update public.usage_counters c
     set used = case when c.period_start < v_period then 1 else c.used + 1 end,
         period_start = greatest(c.period_start, v_period),
         updated_at = now()
   where c.user_id = p_user_id and c.kind = p_kind
     and (case when c.period_start < v_period then 0 else c.used end) < v_limit;
  if not found then
    v_usage := svc_private.quota_usage(p_user_id, p_kind, p_default);
    perform svc_private.raise_error('QUOTA_EXCEEDED',
      format('You have used all %s %s %s. More become available at %s UTC.',
             v_limit, p_kind || 's',
             case (select q.period from svc_private.quotas q where q.name = p_kind)
               when 'month' then 'this month' else 'today' end,
             to_char(svc_private.period_end(p_kind, v_period) at time zone 'UTC',
                     'YYYY-MM-DD HH24:MI')),
      v_usage);
  end if;
  return v_period;
end $$;

-- Charges a running job for the time since its last heartbeat (a retried worker's claim
-- resets the heartbeat, so time a dead worker was gone is never charged). Returns the seconds
-- the user has spent this month; null for a kind outside the budget (its job alone records
-- the time).
create or replace function svc_private.charge_gpu(p_kind text, p_job jsonb)
returns double precision language plpgsql as $$
declare
  v_user uuid := (p_job ->> 'user_id')::uuid;
  v_period date := svc_private.period_start('training', now());
  v_delta double precision := 0;
  v_spent double precision;
begin
  if p_job ->> 'status' = 'running'
     or (p_job ->> 'status' = 'failed' and p_job ->> 'error_code' = 'WORKER_LOST') then
    v_delta := greatest(extract(epoch from now() - coalesce(
      (p_job ->> 'heartbeat_at')::timestamptz, (p_job ->> 'started_at')::timestamptz, now())), 0);
  end if;
  if v_delta > 0 then
    execute format('update %s set gpu_seconds = gpu_seconds + $1 where id = $2',
                   svc_private.job_table(p_kind))
      using v_delta, (p_job ->> 'id')::uuid;
  end if;
  if (svc_private.job_kind(p_kind)).budget = 'free' then
    return null;
  end if;
  insert into public.gpu_spend as s (user_id, period_start, seconds)
  values (v_user, v_period, v_delta)
  on conflict (user_id) do update
     set seconds = case when s.period_start < v_period then excluded.seconds
                        else s.seconds + excluded.seconds end,
         period_start = greatest(s.period_start, v_period),
         updated_at = now()
  returning seconds into v_spent;
  return v_spent;
end $$;

-- The cron's period reset. Counters only ever move forward, so a late or repeated run is
-- harmless: reservations already taken in the new period are left as they are.
create or replace function public.reset_quota_periods(p_now timestamptz default now())
returns jsonb language sql security definer set search_path = '' as $$
  with rolled as (
    update public.usage_counters c
       set used = 0, period_start = svc_private.period_start(c.kind, p_now), updated_at = now()
     where c.period_start < svc_private.period_start(c.kind, p_now)
    returning c.kind
  )
  select coalesce(jsonb_object_agg(q.name, (select count(*) from rolled r
                                               where r.kind = q.name)), '{}'::jsonb)
  from svc_private.quotas q
$$;

-- Trainings (55_trainings_and_models.sql) -------------------------------------------------

-- The job kind: a unit of the monthly training quota each, refunded when it does not succeed;
-- a second live training is refused.
select svc_private.declare_job_kind('training', 'public.training_jobs', p_quota => 'training',
  p_busy_message => 'A training is already running for your account. Wait for it or cancel it.');

-- Starts a training: the dataset's ready minutes (full mixes left out) within the window, the
-- GPU budget not spent, a quota unit reserved, and at most p_max_active live trainings per
-- user.
create or replace function public.start_training(
  p_user_id uuid, p_profile_id uuid, p_params jsonb, p_min_seconds double precision,
  p_max_seconds double precision, p_default_limit integer, p_max_active integer default 1,
  p_gpu_seconds_per_month integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_ready double precision;
  v_period date;
  v_job public.training_jobs;
begin
  perform svc_private.owned_profile(p_user_id, p_profile_id);
  select coalesce(sum(duration_sec), 0) into v_ready from public.dataset_files
   where profile_id = p_profile_id and status = 'ready' and not full_mix;
  if v_ready < p_min_seconds then
    perform svc_private.raise_error('DATASET_TOO_SHORT',
      format('Training needs at least %s minutes of usable audio; this profile has %s.',
             round((p_min_seconds / 60)::numeric, 1), round((v_ready / 60)::numeric, 1)),
      jsonb_build_object('ready_seconds', v_ready, 'min_seconds', p_min_seconds));
  end if;
  if v_ready > p_max_seconds then
    perform svc_private.raise_error('DATASET_TOO_LONG',
      format('Training takes at most %s minutes of audio; this profile has %s. Delete some files.',
             round((p_max_seconds / 60)::numeric, 1), round((v_ready / 60)::numeric, 1)),
      jsonb_build_object('ready_seconds', v_ready, 'max_seconds', p_max_seconds));
  end if;
  v_period := svc_private.admit_job('training', p_user_id, p_default_limit, p_max_active,
                                    p_gpu_seconds_per_month);
  insert into public.training_jobs (user_id, profile_id, params, progress, quota_period_start)
  values (p_user_id, p_profile_id, coalesce(p_params, '{}'::jsonb),
          jsonb_build_object('phase', 'queued'), v_period)
  returning * into v_job;
  return to_jsonb(v_job);
end $$;

create or replace function public.finish_training(
  p_job_id uuid, p_model_version_id uuid, p_model_key text, p_config_key text,
  p_size_bytes bigint, p_metrics jsonb, p_attempt integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb;
  v_prefix text;
begin
  -- the profile (made active below) before the job: the one lock order (20261204000004)
  perform 1 from public.voice_profiles
   where id = (select profile_id from public.training_jobs where id = p_job_id) for update;
  v_job := svc_private.finishing_job('training', p_job_id, p_attempt);
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  v_prefix := format('vc/users/%s/profiles/%s/models/%s/', v_job ->> 'user_id',
                     v_job ->> 'profile_id', p_model_version_id);
  if p_model_key <> v_prefix || 'model.pth' or p_config_key <> v_prefix || 'config.json' then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'Model keys do not match the job.',
      jsonb_build_object('model_key', p_model_key, 'config_key', p_config_key));
  end if;
  insert into public.model_versions
    (id, user_id, profile_id, training_job_id, model_key, config_key, size_bytes, metrics)
  values (p_model_version_id, (v_job ->> 'user_id')::uuid, (v_job ->> 'profile_id')::uuid,
          p_job_id, p_model_key, p_config_key, p_size_bytes, coalesce(p_metrics, '{}'::jsonb));
  update public.voice_profiles
     set active_model_version_id = p_model_version_id, updated_at = now(),
         status = case when status = 'draft' then 'ready' else status end
   where id = (v_job ->> 'profile_id')::uuid;
  return svc_private.succeed_job('training', v_job);
end $$;

-- Conversions (60_conversions.sql) --------------------------------------------------------

-- The job kind: a unit of the daily conversion quota each, refunded when it does not succeed;
-- a second live conversion is refused.
select svc_private.declare_job_kind('conversion', 'public.conversion_jobs',
  p_quota => 'conversion', p_busy_message =>
    'A conversion is already in progress for your account. Wait for it or cancel it.');

-- Creates a conversion awaiting its upload, with a quota unit reserved; refuses to start while
-- the GPU budget is spent.
create or replace function public.create_conversion(
  p_user_id uuid, p_profile_id uuid, p_job_id uuid, p_model_version_id uuid, p_params jsonb,
  p_input_key text, p_input_filename text, p_input_size_bytes bigint,
  p_upload_expires_at timestamptz, p_default_limit integer, p_max_active integer default 1,
  p_gpu_seconds_per_month integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles := svc_private.owned_profile(p_user_id, p_profile_id);
  v_model_id uuid := coalesce(p_model_version_id, v_profile.active_model_version_id);
  v_period date;
  v_job public.conversion_jobs;
begin
  if v_model_id is null then
    perform svc_private.raise_error('NO_MODEL',
      'This profile has no trained model yet. Train one first.',
      jsonb_build_object('profile_id', p_profile_id));
  end if;
  if not exists (select 1 from public.model_versions where id = v_model_id
                   and profile_id = p_profile_id and status = 'ready') then
    perform svc_private.raise_error('NOT_FOUND', 'That model version does not exist.',
                                    jsonb_build_object('model_version_id', v_model_id));
  end if;
  if p_input_key not like format('vc/users/%s/profiles/%s/conversions/%s/input.%%',
                                 p_user_id, p_profile_id, p_job_id) then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The object key does not match its owner.',
                                    jsonb_build_object('input_key', p_input_key));
  end if;
  v_period := svc_private.admit_job('conversion', p_user_id, p_default_limit, p_max_active,
                                    p_gpu_seconds_per_month);
  insert into public.conversion_jobs
    (id, user_id, profile_id, model_version_id, params, input_key, input_filename,
     input_size_bytes, upload_expires_at, progress, quota_period_start)
  values (p_job_id, p_user_id, p_profile_id, v_model_id, coalesce(p_params, '{}'::jsonb),
          p_input_key, p_input_filename, p_input_size_bytes, p_upload_expires_at,
          jsonb_build_object('phase', 'awaiting_upload'), v_period)
  returning * into v_job;
  return to_jsonb(v_job);
end $$;

create or replace function public.finish_conversion(
  p_job_id uuid, p_output_key text, p_input_duration_sec double precision,
  p_attempt integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.finishing_job('conversion', p_job_id, p_attempt);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if p_output_key <> format('vc/users/%s/profiles/%s/conversions/%s/output.wav',
                            v_job ->> 'user_id', v_job ->> 'profile_id', p_job_id) then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The output key does not match the job.',
                                    jsonb_build_object('output_key', p_output_key));
  end if;
  update public.conversion_jobs
     set output_key = p_output_key, input_duration_sec = p_input_duration_sec
   where id = p_job_id;
  return svc_private.succeed_job('conversion', v_job, '{"percent": 100}');
end $$;

-- Separations (65_separations.sql) --------------------------------------------------------

-- A separation queued again while its song is still in the dataset: a vocal the failed
-- attempt registered was deleted with it, so the next attempt writes a new one.
create or replace function svc_private.separation_requeued(p_job jsonb)
returns void language plpgsql as $$
begin
  if not exists (select 1 from public.dataset_files
                  where id = (p_job ->> 'source_file_id')::uuid and status = 'ready') then
    perform svc_private.raise_error('INVALID_TRANSITION', 'That separation''s song is gone.',
      jsonb_build_object('kind', 'separation', 'id', p_job -> 'id'));
  end if;
  update public.separation_jobs set derived_file_id = gen_random_uuid()
   where id = (p_job ->> 'id')::uuid;
end $$;

-- The job kind: no counted quota, charged to the GPU budget; a queued separation waits in line
-- for one of its person's VC_MAX_ACTIVE_SEPARATIONS slots (take_separation hands it out), and a
-- requeued or retried one gets a fresh id for its vocal (separation_requeued).
select svc_private.declare_job_kind('separation', 'public.separation_jobs',
  p_active_limit => 'in_line', p_on_requeue => 'svc_private.separation_requeued');

-- The probe's follow-up on a ready mix (and the cron's, for one waiting in line): hands its
-- queued separation out for launching exactly once, while its person has a free slot
-- (VC_MAX_ACTIVE_SEPARATIONS), or fails it when the GPU budget is spent, as a training would
-- be refused (svc_private.hand_out). Returns {"taken": bool, "job": row or null}.
create or replace function public.take_separation(
  p_max_active integer, p_file_id uuid
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_id uuid;
begin
  select id into v_id from public.separation_jobs where source_file_id = p_file_id;
  if v_id is null then
    return jsonb_build_object('taken', false, 'job', null);
  end if;
  return svc_private.hand_out('separation', v_id, p_max_active,
    'This month''s %s minutes of GPU time are used up, so the song was not separated. '
    'Try again after %s UTC.');
end $$;

create or replace function public.finish_separation(p_job_id uuid, p_attempt integer default null)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.finishing_job('separation', p_job_id, p_attempt);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if not exists (select 1 from public.dataset_files
                  where id = (v_job ->> 'derived_file_id')::uuid and status <> 'deleted') then
    perform svc_private.raise_error('INVALID_TRANSITION', 'The separated vocal was not registered.',
                                    jsonb_build_object('id', p_job_id));
  end if;
  return svc_private.succeed_job('separation', v_job, '{"percent": 100}');
end $$;

-- The person's "try again" on a failed or canceled separation: queued anew (taken and
-- launched like the first time), with a fresh id for its vocal, while the song is still
-- ready and the GPU budget is not spent. A job still queued or running is returned as it is.
create or replace function public.retry_separation(
  p_user_id uuid, p_job_id uuid, p_gpu_seconds_per_month integer default null,
  p_max_active integer default 2
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb;
begin
  perform 1 from public.voice_profiles
   where id = (select profile_id from public.separation_jobs
                where id = p_job_id and user_id = p_user_id) for update;
  v_job := svc_private.lock_job('separation', p_job_id);
  if v_job ->> 'user_id' <> p_user_id::text then
    perform svc_private.raise_error('NOT_FOUND', 'That job does not exist.',
                                    jsonb_build_object('kind', 'separation', 'id', p_job_id));
  end if;
  if v_job ->> 'status' in ('queued', 'running') then
    return v_job;
  end if;
  perform svc_private.owned_profile(p_user_id, (v_job ->> 'profile_id')::uuid);
  if not exists (select 1 from public.dataset_files
                  where id = (v_job ->> 'source_file_id')::uuid and status = 'ready') then
    perform svc_private.raise_error('NOT_READY', 'That song is no longer in the dataset.',
                                    jsonb_build_object('id', p_job_id));
  end if;
  perform svc_private.clear_separation_vocal(v_job);
  perform svc_private.require_gpu_budget(p_user_id, p_gpu_seconds_per_month);
  perform svc_private.slot_lock('separation', p_user_id);
  if svc_private.active_jobs('separation', p_user_id, p_job_id) >= greatest(p_max_active, 1) then
    perform svc_private.raise_error('SEPARATION_IN_PROGRESS',
      format('%s of your songs are being separated; try again when one has finished.',
             greatest(p_max_active, 1)),
      jsonb_build_object('max_active', greatest(p_max_active, 1)));
  end if;
  return svc_private.requeue('separation', v_job, jsonb_build_object(
    'started_at', null, 'worker_call_id', null, 'progress', jsonb_build_object('phase', 'queued')));
end $$;

-- Erasure (75_retention.sql) --------------------------------------------------------------

-- `DELETE /me`: every profile (deleted ones in their grace period too), file, model and job of
-- one user, with every key queued. Live jobs are canceled first, with their refunds, so the
-- usage counters (kept, like quota overrides, until Supabase deletes the auth user) stay true.
-- Returns the counts and the worker call ids to signal. Live jobs of every kind are canceled.
create or replace function public.erase_user_data(p_user_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  r record;
  v_job jsonb;
  v_calls jsonb := '[]'::jsonb;
  v_canceled integer := 0;
  v_profiles uuid[];
  v_result jsonb;
begin
  perform pg_advisory_xact_lock(hashtextextended('svc:profiles:' || p_user_id::text, 0));
  select coalesce(array_agg(id order by id), '{}') into v_profiles
    from (select id from public.voice_profiles where user_id = p_user_id order by id for update) p;
  perform svc_private.lock_live_jobs(p_user_id, null);
  for r in
    select kind, id from svc_private.jobs
     where user_id = p_user_id and status in ('awaiting_upload', 'queued', 'running')
     order by kind, id
  loop
    v_job := svc_private.lock_job(r.kind, r.id);
    if not svc_private.is_terminal(v_job ->> 'status') then
      v_job := svc_private.end_job(r.kind, v_job, 'canceled', 'CANCELED',
                                   'Canceled because the account data was erased.');
      v_canceled := v_canceled + 1;
      if v_job ->> 'worker_call_id' is not null then
        v_calls := v_calls || to_jsonb(v_job ->> 'worker_call_id');
      end if;
    end if;
  end loop;
  v_result := svc_private.purge_profiles(v_profiles, 'account_erased');
  return v_result || jsonb_build_object('jobs_canceled', v_canceled, 'call_ids', v_calls);
end $$;

-- Operators (80_operators.sql) ------------------------------------------------------------

-- A job kind declared later is audited like the first three: the target's kind is 'user',
-- 'profile' or a job kind, checked where the controls look the job up.
alter table ops.audit_log drop constraint if exists audit_log_target_kind_check;

-- failed → queued, once per job, and the cron launches it (take_requeued_jobs). A kind with a
-- quota takes a new reservation in the current period (the failure refunded the old one; an
-- operator's requeue is not held to the limit); a 'refuse' kind keeps its one-live-job-per-user
-- rule; the kind's own step (`on_requeue`, e.g. a separation's song must still be there) runs.
create or replace function ops.requeue_job(
  p_kind text, p_job_id uuid, p_reason text, p_by text default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
  v_kind svc_private.job_kinds := svc_private.job_kind(p_kind);
  v_user uuid := (v_job ->> 'user_id')::uuid;
  v_period date;
  v_patch jsonb := jsonb_build_object('worker_call_id', 'requeued',
    'progress', jsonb_build_object('phase', 'queued', 'requeued', true));
begin
  if v_job ->> 'status' <> 'failed' then
    perform svc_private.invalid_transition(p_kind, v_job, 'queued');
  end if;
  if exists (select 1 from ops.audit_log where action = 'requeue_job' and target_id = p_job_id) then
    perform svc_private.raise_error('INVALID_TRANSITION', 'That job has been requeued once already.',
                                    jsonb_build_object('kind', p_kind, 'id', p_job_id));
  end if;
  perform svc_private.owned_profile(v_user, (v_job ->> 'profile_id')::uuid);
  if exists (select 1 from ops.disabled_users where user_id = v_user) then
    perform svc_private.raise_error('USER_DISABLED', 'That job''s user is disabled.',
                                    jsonb_build_object('user_id', v_user));
  end if;
  if v_kind.quota is not null then
    v_period := svc_private.reserve_quota(v_user, v_kind.quota, 2147483647);
    v_patch := v_patch || jsonb_build_object('quota_state', 'reserved');
  end if;
  if v_kind.active_limit = 'refuse' then
    if svc_private.live_jobs(p_kind, v_user) > 0 then
      perform svc_private.raise_error(upper(p_kind) || '_IN_PROGRESS',
        format('That user already has a %s in progress.', p_kind),
        jsonb_build_object('user_id', v_user));
    end if;
  end if;
  perform svc_private.audit(p_by, 'requeue_job', p_kind, p_job_id, p_reason,
    jsonb_build_object('error_code', v_job ->> 'error_code'));
  if v_period is not null then
    execute format('update %s set quota_period_start = $1 where id = $2',
                   svc_private.job_table(p_kind)) using v_period, p_job_id;
  end if;
  return svc_private.requeue(p_kind, v_job, v_patch);
end $$;

-- Adds p_extra units on top of the user's limit for the current period only.
create or replace function ops.grant_quota(
  p_user_id uuid, p_kind text, p_extra integer, p_reason text, p_by text default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_period date;
begin
  if not exists (select 1 from svc_private.quotas q where q.name = p_kind)
     or p_extra is null or p_extra <= 0 then
    perform svc_private.raise_error('INVALID_ARGUMENT',
      'Grant a positive number of trainings or conversions.',
      jsonb_build_object('kind', p_kind, 'extra', p_extra));
  end if;
  if not exists (select 1 from auth.users where id = p_user_id) then
    perform svc_private.raise_error('NOT_FOUND', 'No such user.',
                                    jsonb_build_object('user_id', p_user_id));
  end if;
  v_period := svc_private.period_start(p_kind, now());
  perform svc_private.audit(p_by, 'grant_quota', 'user', p_user_id, p_reason,
    jsonb_build_object('kind', p_kind, 'extra', p_extra, 'period_start', v_period));
  insert into public.quota_grants as g (user_id, kind, period_start, extra)
  values (p_user_id, p_kind, v_period, p_extra)
  on conflict (user_id, kind, period_start) do update
     set extra = g.extra + excluded.extra, updated_at = now();
  return (select jsonb_build_object('user_id', g.user_id, 'kind', g.kind,
                                    'period_start', g.period_start, 'extra', g.extra)
            from public.quota_grants g
           where g.user_id = p_user_id and g.kind = p_kind and g.period_start = v_period);
end $$;

-- What is running or waiting right now (jobs of every kind: svc_private.jobs), and how long
-- since each worker was heard from?
create or replace view ops.jobs_in_flight as
select j.kind, j.id, j.user_id, u.email, j.profile_id, j.status,
       j.progress ->> 'phase' as phase, (j.progress ->> 'percent')::double precision as percent,
       j.attempt, j.worker_call_id, j.created_at, j.started_at, j.heartbeat_at,
       now() - coalesce(j.heartbeat_at, j.started_at) as heartbeat_age,
       now() - j.created_at as age
  from svc_private.jobs j left join auth.users u on u.id = j.user_id
 where j.status in ('awaiting_upload', 'queued', 'running');

-- Why do jobs (of every kind) fail and uploads get rejected, over the last day and week?
create or replace view ops.failures as
with ended as (
  select kind as source, status, error_code as code, error_message as message,
         finished_at as at
    from svc_private.jobs
   where status in ('failed', 'canceled') and finished_at > now() - interval '7 days'
  union all
  select 'upload', status, reject_code, reject_message, probed_at
    from public.dataset_files
   where status = 'rejected' and probed_at > now() - interval '7 days'
)
select source, status, coalesce(code, 'UNKNOWN') as code,
       count(*) filter (where at > now() - interval '1 day') as last_day,
       count(*) as last_week, max(at) as last_at,
       (array_agg(message order by at desc))[1] as last_message
  from ended
 group by source, status, coalesce(code, 'UNKNOWN');

-- Who uses what this period: counted units, limits set by operators, GPU seconds this month
-- and bytes stored. Periods are spelled out rather than taken from svc_private, which the
-- service role reading the view may not execute. The month's GPU seconds count every job
-- kind's (svc_private.jobs).
create or replace view ops.usage_this_period as
with t as (
  select user_id,
         count(*) filter (where created_at >= date_trunc('month', now() at time zone 'UTC')
                                               at time zone 'UTC') as trainings_this_month
    from public.training_jobs group by user_id
), c as (
  select user_id,
         count(*) filter (where created_at >= (now() at time zone 'UTC')::date
                                                at time zone 'UTC') as conversions_today,
         coalesce(sum(input_size_bytes), 0) as conversion_input_bytes
    from public.conversion_jobs group by user_id
), s as (
  select user_id,
         sum(gpu_seconds) filter (where created_at >= date_trunc('month', now() at time zone 'UTC')
                                                      at time zone 'UTC') as gpu_seconds
    from svc_private.jobs group by user_id
), d as (
  select user_id, coalesce(sum(size_bytes), 0) as dataset_bytes
    from public.dataset_files where status <> 'deleted' group by user_id
), m as (
  select user_id, coalesce(sum(size_bytes), 0) as model_bytes
    from public.model_versions group by user_id
), q as (
  select user_id,
         max(used) filter (where kind = 'training'
                             and period_start >= date_trunc('month', now() at time zone 'UTC')::date)
           as trainings_used,
         max(used) filter (where kind = 'conversion'
                             and period_start >= (now() at time zone 'UTC')::date)
           as conversions_used
    from public.usage_counters group by user_id
), g as (
  select user_id,
         sum(extra) filter (where kind = 'training'
                              and period_start = date_trunc('month', now() at time zone 'UTC')::date)
           as trainings_granted,
         sum(extra) filter (where kind = 'conversion'
                              and period_start = (now() at time zone 'UTC')::date)
           as conversions_granted
    from public.quota_grants group by user_id
)
select u.id as user_id, u.email,
       coalesce(q.trainings_used, 0) as trainings_used,
       coalesce(t.trainings_this_month, 0) as trainings_this_month,
       o.trainings_per_month as trainings_limit_override,
       coalesce(g.trainings_granted, 0) as trainings_granted,
       coalesce(q.conversions_used, 0) as conversions_used,
       coalesce(c.conversions_today, 0) as conversions_today,
       o.conversions_per_day as conversions_limit_override,
       coalesce(g.conversions_granted, 0) as conversions_granted,
       coalesce(s.gpu_seconds, 0) as gpu_seconds_this_month,
       (to_jsonb(o) ->> 'gpu_seconds_per_month')::integer as gpu_limit_override,
       coalesce(d.dataset_bytes, 0) as dataset_bytes,
       coalesce(m.model_bytes, 0) as model_bytes,
       coalesce(c.conversion_input_bytes, 0) as conversion_input_bytes,
       coalesce(d.dataset_bytes, 0) + coalesce(m.model_bytes, 0)
         + coalesce(c.conversion_input_bytes, 0) as stored_bytes,
       (du.user_id is not null) as disabled
  from auth.users u
  left join t on t.user_id = u.id
  left join c on c.user_id = u.id
  left join s on s.user_id = u.id
  left join d on d.user_id = u.id
  left join m on m.user_id = u.id
  left join q on q.user_id = u.id
  left join g on g.user_id = u.id
  left join public.quota_overrides o on o.user_id = u.id
  left join ops.disabled_users du on du.user_id = u.id;

-- Access (90_access.sql) ------------------------------------------------------------------

-- The new helpers in svc_private are nobody's but the definers'; the public functions stay
-- the service's (their signatures are unchanged, so the workers' grants stand).
select svc_private.restrict_to_service();
revoke all on all functions in schema ops from public, anon, authenticated;
grant execute on all functions in schema ops to service_role;
