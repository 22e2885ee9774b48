-- The job machine every job kind shares. A kind is a table with the shared lifecycle columns
-- and one declaration row (`svc_private.declare_job_kind`, called in the kind's own file);
-- everything below is written once and reads the declaration: lookups, admission (budget,
-- quota, active limit), claim, heartbeat (with the GPU charge and budget), the worker call id,
-- finish, fail, cancel (with the refund rule), the reaper, requeue and retry, and the
-- view `svc_private.jobs` (every job of every kind) that the operators' views read. A kind's
-- own rules (what it starts from, what its finish records) live in its file.
-- docs/architecture.md, "How to add a job kind", walks through a declaration.

set check_function_bodies = off;

-- Job kinds --------------------------------------------------------------------------------

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

select svc_private.build_jobs_view();

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

create or replace function svc_private.is_terminal(p_status text)
returns boolean language sql immutable as $$
  select p_status in ('succeeded', 'failed', 'canceled')
$$;

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

create or replace function svc_private.invalid_transition(p_kind text, p_job jsonb, p_to text)
returns void language sql as $$
  select svc_private.raise_error('INVALID_TRANSITION',
    format('A %s job that is %s cannot become %s.', p_kind, p_job ->> 'status', p_to),
    jsonb_build_object('kind', p_kind, 'id', p_job -> 'id', 'status', p_job -> 'status',
                       'to', p_to))
$$;

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

-- queued → running; a retried worker on a running job resumes it; a finished job is returned
-- untouched so the worker can see it has nothing to do.
create or replace function public.claim_job(p_kind text, p_job_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if v_job ->> 'status' not in ('queued', 'running') then
    perform svc_private.invalid_transition(p_kind, v_job, 'running');
  end if;
  return svc_private.update_job(p_kind, v_job, jsonb_build_object(
    'status', 'running', 'attempt', (v_job ->> 'attempt')::integer + 1, 'heartbeat_at', now(),
    'started_at', coalesce(nullif(v_job -> 'started_at', 'null'::jsonb), to_jsonb(now()))));
end $$;

create or replace function public.set_job_call_id(p_kind text, p_job_id uuid, p_call_id text)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  return svc_private.update_job(p_kind, v_job, jsonb_build_object('worker_call_id', p_call_id));
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

create or replace function public.fail_job(
  p_kind text, p_job_id uuid, p_error_code text, p_error_message text,
  p_attempt integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.worker_job(p_kind, p_job_id, p_attempt);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  return svc_private.end_job(p_kind, v_job, 'failed', p_error_code, p_error_message);
end $$;

create or replace function public.cancel_job(p_kind text, p_user_id uuid, p_job_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
begin
  if v_job ->> 'user_id' <> p_user_id::text then
    perform svc_private.raise_error('NOT_FOUND', 'That job does not exist.',
                                    jsonb_build_object('kind', p_kind, 'id', p_job_id));
  end if;
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  return svc_private.end_job(p_kind, v_job, 'canceled', 'CANCELED', 'Canceled at your request.');
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

-- Each job row keeps when it last entered `queued` (`queued_at`), set here so every path into
-- the state (create, queue_conversion, a retry, ops.requeue_job) sets it once; the reaper
-- measures a queued job's wait from it (`stale_reason`). `declare_job_kind` puts the trigger on
-- each kind's table.
create or replace function svc_private.stamp_queued_at()
returns trigger language plpgsql as $$
begin
  if new.status = 'queued' and (tg_op = 'INSERT' or old.status is distinct from 'queued') then
    new.queued_at := now();
  end if;
  return new;
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

-- The job a worker reports on, locked. `p_attempt` is the attempt its claim returned: once a
-- retried worker has claimed the job again, an older attempt gets STALE_ATTEMPT (its worker
-- stops quietly; without the fence two workers on one job were charged as one), as does any
-- attempt on a job queued again since (requeued or retried, not yet claimed). Null (the
-- service's own calls, e.g. a failed launch) skips the fence. A job the reaper failed as
-- WORKER_LOST is charged the time since its last heartbeat, once: the report proves the worker
-- was running.
create or replace function svc_private.worker_job(p_kind text, p_job_id uuid, p_attempt integer)
returns jsonb language plpgsql as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
begin
  if p_attempt is not null and (p_attempt <> (v_job ->> 'attempt')::integer
                                or v_job ->> 'status' in ('awaiting_upload', 'queued')) then
    perform svc_private.raise_error('STALE_ATTEMPT',
      'A newer attempt of this job has been claimed; this worker must stop.',
      jsonb_build_object('kind', p_kind, 'id', p_job_id, 'attempt', p_attempt,
                         'current_attempt', (v_job ->> 'attempt')::integer));
  end if;
  if v_job ->> 'status' = 'failed' and v_job ->> 'error_code' = 'WORKER_LOST' then
    perform svc_private.charge_gpu(p_kind, v_job);
    v_job := svc_private.update_job(p_kind, v_job, jsonb_build_object('heartbeat_at', now()));
  end if;
  return v_job;
end $$;

-- Admission, finish and requeue ------------------------------------------------------------

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
