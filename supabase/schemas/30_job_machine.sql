-- The job machine shared by every job kind (trainings, conversions, separations): lookups,
-- claim, heartbeat (with the GPU charge and budget), the worker call id, fail, cancel, the
-- reaper and the launch of requeued jobs. A kind's own start and finish live in its file.

set check_function_bodies = off;

-- The table of a job kind: the one place a kind's name becomes a table.
create or replace function svc_private.job_table(p_kind text)
returns text language plpgsql immutable as $$
begin
  if p_kind = 'training' then return 'training_jobs'; end if;
  if p_kind = 'conversion' then return 'conversion_jobs'; end if;
  if p_kind = 'separation' then return 'separation_jobs'; end if;
  if p_kind = 'instant' then return 'instant_jobs'; end if;
  perform svc_private.raise_error('INVALID_ARGUMENT', 'Unknown job kind.',
                                  jsonb_build_object('kind', p_kind));
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
  execute format('select to_jsonb(j) from public.%I j where j.id = $1 for update',
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
    'update public.%1$I j
        set status = r.status, progress = r.progress, worker_call_id = r.worker_call_id,
            attempt = r.attempt, heartbeat_at = r.heartbeat_at, error_code = r.error_code,
            error_message = r.error_message, quota_state = r.quota_state,
            started_at = r.started_at, finished_at = r.finished_at
       from jsonb_populate_record(null::public.%1$I, $1) r
      where j.id = r.id
      returning to_jsonb(j)', svc_private.job_table(p_kind))
    into v_job using p_job || p_patch;
  return v_job;
end $$;

-- Ends a non-terminal job as failed or canceled and gives its reservation back. It charges the
-- GPU time since the last heartbeat when a worker fails or a user cancels (a reaped job's worker
-- is gone: nothing more to charge).
create or replace function svc_private.end_job(
  p_kind text, p_job jsonb, p_status text, p_code text, p_message text
) returns jsonb language plpgsql as $$
begin
  if p_code not in ('WORKER_LOST', 'NOT_STARTED', 'UPLOAD_EXPIRED') then
    perform svc_private.charge_gpu(p_kind, p_job);
  end if;
  if p_job ->> 'quota_state' = 'reserved' then
    perform svc_private.refund_quota((p_job ->> 'user_id')::uuid, p_kind,
                                     (p_job ->> 'quota_period_start')::date);
  end if;
  return svc_private.update_job(p_kind, p_job, jsonb_build_object(
    'status', p_status, 'error_code', p_code, 'error_message', p_message,
    'finished_at', now(),
    'quota_state', case when p_job ->> 'quota_state' = 'reserved' then 'refunded'
                        else p_job ->> 'quota_state' end,
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
  p_job jsonb, p_heartbeat_timeout_sec integer, p_queued_timeout_sec integer
) returns text language sql stable as $$
  select case
    when p_job ->> 'status' = 'awaiting_upload'
         and (p_job ->> 'upload_expires_at')::timestamptz < now() then 'UPLOAD_EXPIRED'
    when p_job ->> 'status' = 'queued'
         -- a separation never handed out is in line for a slot (only separations have
         -- `derived_file_id`); the cron launches it, so it is not lost
         and not (p_job ? 'derived_file_id' and p_job ->> 'worker_call_id' is null)
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
  execute format('select to_jsonb(j) from public.%I j where j.id = $1 and j.user_id = $2',
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
       from (select * from public.%I where user_id = $1 and ($2::uuid is null or profile_id = $2)
              order by created_at desc limit $3) j', svc_private.job_table(p_kind))
    into v_jobs using p_user_id, p_profile_id, least(greatest(p_limit, 1), 200);
  return v_jobs;
end $$;

create or replace function public.get_job_by_id(p_kind text, p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_job jsonb;
begin
  execute format('select to_jsonb(j) from public.%I j where j.id = $1',
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

-- Fails jobs whose worker went silent or never started, cancels conversions whose upload never
-- came, and refunds each. Candidates are re-checked under the row lock, so a job that moved on
-- meanwhile is left alone. Separations too: no quota to refund, so their message says how to try
-- again instead.
create or replace function public.reap_stale_jobs(
  p_heartbeat_timeout_sec integer, p_queued_timeout_sec integer
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  r record;
  v_job jsonb;
  v_reason text;
  v_reaped jsonb := '[]'::jsonb;
begin
  for r in
    select 'training' as kind, id from public.training_jobs
     where status in ('queued', 'running')
    union all
    select 'conversion', id from public.conversion_jobs
     where status in ('awaiting_upload', 'queued', 'running')
    union all
    select 'separation', id from public.separation_jobs
     where status in ('queued', 'running')
  loop
    v_job := svc_private.lock_job(r.kind, r.id);
    v_reason := svc_private.stale_reason(v_job, p_heartbeat_timeout_sec, p_queued_timeout_sec);
    if v_reason = 'UPLOAD_EXPIRED' then
      v_job := svc_private.end_job(r.kind, v_job, 'canceled', v_reason,
        'The input was not uploaded before its upload link expired.');
    elsif v_reason = 'NOT_STARTED' then
      v_job := svc_private.end_job(r.kind, v_job, 'failed', v_reason,
        case when r.kind = 'separation'
             then 'The separation waited too long for a worker. Try again.'
             else 'The job waited too long for a worker. Your quota was refunded; please try again.'
        end);
    elsif v_reason = 'WORKER_LOST' then
      v_job := svc_private.end_job(r.kind, v_job, 'failed', v_reason,
        case when r.kind = 'separation'
             then 'The separation''s worker stopped responding. Try again.'
             else 'The worker stopped responding. Your quota was refunded; please try again.'
        end);
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
-- cannot take it again) and launches it as the API would. It also hands out separations whose
-- launch was lost (the probe recorded the job but its follow-up never ran): queued, never taken,
-- a minute old.
create or replace function public.take_requeued_jobs(p_limit integer default 50)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_taken jsonb := '[]'::jsonb;
  v_rows integer;
  r record;
begin
  for r in
    select 'training' as kind, id from public.training_jobs
     where status = 'queued' and worker_call_id = 'requeued'
    union all
    select 'conversion', id from public.conversion_jobs
     where status = 'queued' and worker_call_id = 'requeued'
    union all
    select 'separation', id from public.separation_jobs
     where status = 'queued' and worker_call_id = 'requeued'
    limit least(greatest(p_limit, 1), 500)
  loop
    execute format('update public.%I set worker_call_id = ''dispatching''
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
-- the state (create, queue_conversion, retry_separation, ops.requeue_job) sets it once; the
-- reaper measures a queued job's wait from it (`stale_reason`).
create or replace function svc_private.stamp_queued_at()
returns trigger language plpgsql as $$
begin
  if new.status = 'queued' and (tg_op = 'INSERT' or old.status is distinct from 'queued') then
    new.queued_at := now();
  end if;
  return new;
end $$;

create trigger stamp_queued_at before insert or update of status on public.training_jobs
  for each row execute function svc_private.stamp_queued_at();
create trigger stamp_queued_at before insert or update of status on public.conversion_jobs
  for each row execute function svc_private.stamp_queued_at();
create trigger stamp_queued_at before insert or update of status on public.separation_jobs
  for each row execute function svc_private.stamp_queued_at();

-- Every live job of a user (or of one profile), locked by id before any is ended.
create or replace function svc_private.lock_live_jobs(p_user_id uuid, p_profile_id uuid)
returns void language plpgsql as $$
begin
  perform 1 from public.training_jobs
   where user_id = p_user_id and (p_profile_id is null or profile_id = p_profile_id)
     and status in ('queued', 'running') order by id for update;
  perform 1 from public.conversion_jobs
   where user_id = p_user_id and (p_profile_id is null or profile_id = p_profile_id)
     and status in ('awaiting_upload', 'queued', 'running') order by id for update;
  perform 1 from public.separation_jobs
   where user_id = p_user_id and (p_profile_id is null or profile_id = p_profile_id)
     and status in ('queued', 'running') order by id for update;
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
