-- Job charging, budget and fencing (issue 23): every finish charges the GPU time since the
-- last heartbeat; the default GPU budget is the server's (published by the service, never
-- sent by a worker); a worker the reaper gave up on that reports after all is charged for the
-- time it was silent; and a worker's reports carry the attempt it claimed, so an old attempt
-- cannot heartbeat, finish or fail a job a retried worker has claimed since. Safe to run twice.

-- The server's default budget ---------------------------------------------------------------

-- One row: the monthly GPU seconds of a user without an override. The service publishes its
-- setting here (`set_gpu_budget`, on every reaper tick), so the heartbeat, which the worker
-- login calls, needs nothing from the worker. Seeded with the setting's default.
create table if not exists svc_private.gpu_budget (
  only_row boolean primary key default true check (only_row),
  seconds_per_month integer not null check (seconds_per_month >= 0),
  updated_at timestamptz not null default now()
);
insert into svc_private.gpu_budget (seconds_per_month) values (8 * 3600)
on conflict (only_row) do nothing;
revoke all on table svc_private.gpu_budget from public, anon, authenticated;

create or replace function public.set_gpu_budget(p_gpu_seconds_per_month integer)
returns jsonb language plpgsql security definer set search_path = '' as $$
begin
  if p_gpu_seconds_per_month is null or p_gpu_seconds_per_month < 0 then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The GPU budget must be 0 or more seconds.',
      jsonb_build_object('gpu_seconds_per_month', p_gpu_seconds_per_month));
  end if;
  insert into svc_private.gpu_budget (seconds_per_month) values (p_gpu_seconds_per_month)
  on conflict (only_row) do update
     set seconds_per_month = excluded.seconds_per_month, updated_at = now()
   where svc_private.gpu_budget.seconds_per_month is distinct from excluded.seconds_per_month;
  return jsonb_build_object('gpu_seconds_per_month', p_gpu_seconds_per_month);
end $$;

-- The user's monthly limit as the server knows it: their override, else the published default.
create or replace function svc_private.server_gpu_limit(p_user_id uuid)
returns integer language sql stable as $$
  select svc_private.gpu_limit(p_user_id,
                               (select b.seconds_per_month from svc_private.gpu_budget b))
$$;

-- Charging ----------------------------------------------------------------------------------

-- Was: 20261122000003_spend_and_abuse.sql. Also charges a job the reaper failed as
-- WORKER_LOST when its worker reports after all: it was running the whole silent stretch.
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
    execute format('update public.%I set gpu_seconds = gpu_seconds + $1 where id = $2',
                   svc_private.job_table(p_kind))
      using v_delta, (p_job ->> 'id')::uuid;
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

-- A worker's report --------------------------------------------------------------------------

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

-- Was: 20261122000003_spend_and_abuse.sql. The budget is the server's (no worker argument);
-- the report carries the worker's attempt (null: unfenced). The attempt comes before the
-- progress so the signature differs from the old one's, which re-running the old migration
-- re-creates (a `create or replace` of the same types cannot rename a parameter).
drop function if exists public.heartbeat_job(text, uuid, jsonb, integer);
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

-- Was: 20261121000003_functions.sql. Fenced by the worker's attempt.
drop function if exists public.fail_job(text, uuid, text, text);
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

-- Was: 20261121000003_functions.sql. Now charges the time since the last heartbeat (the
-- upload and the quality report's tail) and is fenced by the worker's attempt.
drop function if exists public.finish_training(uuid, uuid, text, text, bigint, jsonb);
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
  v_job := svc_private.worker_job('training', p_job_id, p_attempt);
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if v_job ->> 'status' <> 'running' then
    perform svc_private.invalid_transition('training', v_job, 'succeeded');
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
  perform svc_private.charge_gpu('training', v_job);
  return svc_private.update_job('training', v_job, jsonb_build_object(
    'status', 'succeeded', 'finished_at', now(), 'quota_state', 'charged',
    'progress', v_job -> 'progress' || jsonb_build_object('phase', 'succeeded')));
end $$;

-- Was: 20261121000003_functions.sql. Now charges the time since the last heartbeat (the
-- output's upload) and is fenced by the worker's attempt.
drop function if exists public.finish_conversion(uuid, text, double precision);
create or replace function public.finish_conversion(
  p_job_id uuid, p_output_key text, p_input_duration_sec double precision,
  p_attempt integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.worker_job('conversion', p_job_id, p_attempt);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if v_job ->> 'status' <> 'running' then
    perform svc_private.invalid_transition('conversion', v_job, 'succeeded');
  end if;
  if p_output_key <> format('vc/users/%s/profiles/%s/conversions/%s/output.wav',
                            v_job ->> 'user_id', v_job ->> 'profile_id', p_job_id) then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The output key does not match the job.',
                                    jsonb_build_object('output_key', p_output_key));
  end if;
  update public.conversion_jobs
     set output_key = p_output_key, input_duration_sec = p_input_duration_sec
   where id = p_job_id;
  perform svc_private.charge_gpu('conversion', v_job);
  return svc_private.update_job('conversion', v_job, jsonb_build_object(
    'status', 'succeeded', 'finished_at', now(), 'quota_state', 'charged',
    'progress', v_job -> 'progress' || jsonb_build_object('phase', 'succeeded', 'percent', 100)));
end $$;

-- Was: 20261122000012_dataset_separation.sql. Fenced by the worker's attempt.
drop function if exists public.finish_separation(uuid);
create or replace function public.finish_separation(p_job_id uuid, p_attempt integer default null)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.worker_job('separation', p_job_id, p_attempt);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if v_job ->> 'status' <> 'running' then
    perform svc_private.invalid_transition('separation', v_job, 'succeeded');
  end if;
  if not exists (select 1 from public.dataset_files
                  where id = (v_job ->> 'derived_file_id')::uuid and status <> 'deleted') then
    perform svc_private.raise_error('INVALID_TRANSITION', 'The separated vocal was not registered.',
                                    jsonb_build_object('id', p_job_id));
  end if;
  perform svc_private.charge_gpu('separation', v_job);
  return svc_private.update_job('separation', v_job, jsonb_build_object(
    'status', 'succeeded', 'finished_at', now(),
    'progress', v_job -> 'progress' || jsonb_build_object('phase', 'succeeded', 'percent', 100)));
end $$;

-- Grants: the service may call all of these; the worker login the ones it called before
-- (dropping a function dropped its grants).
select svc_private.restrict_to_service(array[
  'set_gpu_budget', 'heartbeat_job', 'fail_job', 'finish_training', 'finish_conversion',
  'finish_separation']);
select svc_private.grant_to_worker(array[
  'heartbeat_job', 'fail_job', 'finish_training', 'finish_conversion', 'finish_separation']);

-- The probe takes a ready mix's separation with the worker login: it must not choose the
-- budget either (it sent the service's default, and NULL meant none). Was:
-- 20261204000001_job_lifecycle.sql, which also added the per-person limit. (The limit comes
-- first so the types differ from the old (uuid, integer), which re-running 0012 re-creates.)
drop function if exists public.take_separation(uuid, integer);
drop function if exists public.take_separation(uuid, integer, integer);
create or replace function public.take_separation(
  p_max_active integer, p_file_id uuid
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_id uuid;
  v_job jsonb;
  v_usage jsonb;
begin
  select id into v_id from public.separation_jobs where source_file_id = p_file_id;
  if v_id is null then
    return jsonb_build_object('taken', false, 'job', null);
  end if;
  v_job := svc_private.lock_job('separation', v_id);
  if v_job ->> 'status' <> 'queued' or v_job ->> 'worker_call_id' is not null then
    return jsonb_build_object('taken', false, 'job', v_job);
  end if;
  v_usage := svc_private.gpu_usage((v_job ->> 'user_id')::uuid,
                                  (select b.seconds_per_month from svc_private.gpu_budget b));
  if v_usage ->> 'limit_seconds' is not null
     and (v_usage ->> 'remaining_seconds')::double precision <= 0 then
    v_job := svc_private.end_job('separation', v_job, 'failed', 'GPU_BUDGET_EXHAUSTED',
      format('This month''s %s minutes of GPU time are used up, so the song was not separated. '
             'Try again after %s UTC.',
             round((v_usage ->> 'limit_seconds')::numeric / 60, 1),
             to_char((v_usage ->> 'resets_at')::timestamptz at time zone 'UTC',
                     'YYYY-MM-DD HH24:MI')));
    return jsonb_build_object('taken', false, 'job', v_job);
  end if;
  -- one taker at a time per person, so two deliveries cannot both see a free slot
  perform pg_advisory_xact_lock(hashtextextended('svc:separations:' || (v_job ->> 'user_id'), 0));
  if svc_private.active_separations((v_job ->> 'user_id')::uuid, v_id)
     >= greatest(p_max_active, 1) then
    return jsonb_build_object('taken', false, 'job', v_job);
  end if;
  v_job := svc_private.update_job('separation', v_job,
                                  jsonb_build_object('worker_call_id', 'dispatching'));
  return jsonb_build_object('taken', true, 'job', v_job);
end $$;

select svc_private.restrict_to_service(array['take_separation']);
select svc_private.grant_to_worker(array['take_separation']);
