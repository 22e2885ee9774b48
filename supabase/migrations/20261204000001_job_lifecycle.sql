-- Job lifecycle fixes found from outside (issue 23): a requeued or retried job is measured
-- from when it was queued again, and every finish charges the GPU time since the last beat.

-- Queued time ------------------------------------------------------------------------------
-- `stale_reason` measured a queued job's wait from `created_at`, which a requeue, a retry or
-- a conversion's late upload never reset: a job created more than the queued timeout ago was
-- failed NOT_STARTED at the next reaper tick, before it could start. Each job row now keeps
-- when it last entered `queued`, set by a trigger so every path into the state (create,
-- queue_conversion, retry_separation, ops.requeue_job) sets it without repeating itself.
alter table public.training_jobs add column if not exists queued_at timestamptz not null default now();
alter table public.conversion_jobs add column if not exists queued_at timestamptz not null default now();
alter table public.separation_jobs add column if not exists queued_at timestamptz not null default now();

create or replace function svc_private.stamp_queued_at()
returns trigger language plpgsql as $$
begin
  if new.status = 'queued' and (tg_op = 'INSERT' or old.status is distinct from 'queued') then
    new.queued_at := now();
  end if;
  return new;
end $$;

drop trigger if exists stamp_queued_at on public.training_jobs;
create trigger stamp_queued_at before insert or update of status on public.training_jobs
  for each row execute function svc_private.stamp_queued_at();
drop trigger if exists stamp_queued_at on public.conversion_jobs;
create trigger stamp_queued_at before insert or update of status on public.conversion_jobs
  for each row execute function svc_private.stamp_queued_at();
drop trigger if exists stamp_queued_at on public.separation_jobs;
create trigger stamp_queued_at before insert or update of status on public.separation_jobs
  for each row execute function svc_private.stamp_queued_at();

create or replace function svc_private.stale_reason(
  p_job jsonb, p_heartbeat_timeout_sec integer, p_queued_timeout_sec integer
) returns text language sql stable as $$
  select case
    when p_job ->> 'status' = 'awaiting_upload'
         and (p_job ->> 'upload_expires_at')::timestamptz < now() then 'UPLOAD_EXPIRED'
    when p_job ->> 'status' = 'queued'
         and coalesce(p_job ->> 'queued_at', p_job ->> 'created_at')::timestamptz
             < now() - make_interval(secs => p_queued_timeout_sec) then 'NOT_STARTED'
    when p_job ->> 'status' = 'running'
         and coalesce(p_job ->> 'heartbeat_at', p_job ->> 'started_at')::timestamptz
             < now() - make_interval(secs => p_heartbeat_timeout_sec) then 'WORKER_LOST'
  end
$$;

-- Finishing charges ------------------------------------------------------------------------
-- Was: 20261121000003_functions.sql. The output upload and the tail of the quality report ran
-- after the last heartbeat and were never charged; now the finish charges them, as
-- finish_separation does (job row locked first, then the user's spend: the one lock order).
create or replace function public.finish_training(
  p_job_id uuid, p_model_version_id uuid, p_model_key text, p_config_key text,
  p_size_bytes bigint, p_metrics jsonb
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb;
  v_prefix text;
begin
  -- the profile (made active below) before the job: the one lock order (20261204000004)
  perform 1 from public.voice_profiles
   where id = (select profile_id from public.training_jobs where id = p_job_id) for update;
  v_job := svc_private.lock_job('training', p_job_id);
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

create or replace function public.finish_conversion(
  p_job_id uuid, p_output_key text, p_input_duration_sec double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job('conversion', p_job_id);
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

select svc_private.restrict_to_service(array['finish_training', 'finish_conversion']);

-- Separations in line ----------------------------------------------------------------------
-- Every ready full mix queued a separation that was launched at once, with no per-user limit:
-- one account's album could hold every separation GPU. Now a person has at most
-- `p_max_active` separations dispatched or running (VC_MAX_ACTIVE_SEPARATIONS); the rest wait
-- in line, queued and not handed out, and the reaper's cron launches them as slots free
-- (`waiting_separations`). A separation waiting in line is never failed NOT_STARTED: it waits
-- on us, not on a lost worker.
create or replace function svc_private.active_separations(p_user_id uuid, p_except uuid)
returns integer language sql stable as $$
  select count(*)::integer from public.separation_jobs
   where user_id = p_user_id and id is distinct from p_except
     and (status = 'running' or (status = 'queued' and worker_call_id is not null))
$$;

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

drop function if exists public.take_separation(uuid, integer);
-- Was: 20261122000012_dataset_separation.sql. A mix's queued separation, handed out once for
-- launching while its person has a free slot; left in line (taken false) otherwise.
create or replace function public.take_separation(
  p_file_id uuid, p_gpu_seconds_per_month integer default null, p_max_active integer default 2
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
  v_usage := svc_private.gpu_usage((v_job ->> 'user_id')::uuid, p_gpu_seconds_per_month);
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

-- The mixes whose separations wait in line (queued, never handed out) for a minute or more,
-- oldest first: the cron offers each to `take_separation`, which launches those with a slot.
-- A minute's grace leaves a fresh one to the probe that queued it.
create or replace function public.waiting_separations(p_limit integer default 50)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(source_file_id order by queued_at), '[]'::jsonb)
    from (select source_file_id, queued_at from public.separation_jobs
           where status = 'queued' and worker_call_id is null
             and queued_at < now() - interval '1 minute'
           order by queued_at limit least(greatest(p_limit, 1), 500)) w
$$;

-- Was: 20261122000012_dataset_separation.sql. Separations that were never handed out are no
-- longer taken here (they go through `take_separation` and its per-person limit); only the
-- jobs an operator requeued are.
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

-- A retry meets the song's earlier vocal: one the probe rejected is dropped and the song is
-- separated again (also after a success: the person asked for another try); one that is in
-- the dataset refuses the retry up front (409), where it used to run a whole charged Demucs
-- pass and then fail INTERNAL on the one-live-vocal index.
create or replace function svc_private.clear_separation_vocal(p_job jsonb)
returns void language plpgsql as $$
declare
  v_vocal public.dataset_files;
begin
  select * into v_vocal from public.dataset_files
   where derived_from = (p_job ->> 'source_file_id')::uuid and status <> 'deleted'
   for update;
  if not found then
    return;
  end if;
  if v_vocal.status <> 'rejected' then
    perform svc_private.raise_error('INVALID_TRANSITION',
      'This song''s vocal is already in the dataset. Delete it to separate the song again.',
      jsonb_build_object('kind', 'separation', 'id', p_job -> 'id',
                         'vocal_file_id', v_vocal.id));
  end if;
  update public.dataset_files set status = 'deleted' where id = v_vocal.id;
end $$;

drop function if exists public.retry_separation(uuid, uuid, integer);
-- Was: 20261122000012_dataset_separation.sql. The person's "try again" on a separation that
-- failed, was canceled, or succeeded with a vocal the probe rejected: queued anew (taken and
-- launched like the first time), with a fresh id for its vocal, while the song is still
-- ready, the GPU budget is not spent and the person has a free separation slot (409
-- SEPARATION_IN_PROGRESS otherwise, like the other kinds). The profile is locked before the
-- job (the one lock order, 20261204000004).
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
  perform pg_advisory_xact_lock(hashtextextended('svc:separations:' || p_user_id::text, 0));
  if svc_private.active_separations(p_user_id, p_job_id) >= greatest(p_max_active, 1) then
    perform svc_private.raise_error('SEPARATION_IN_PROGRESS',
      format('%s of your songs are being separated; try again when one has finished.',
             greatest(p_max_active, 1)),
      jsonb_build_object('max_active', greatest(p_max_active, 1)));
  end if;
  update public.separation_jobs set derived_file_id = gen_random_uuid() where id = p_job_id;
  return svc_private.update_job('separation', v_job, jsonb_build_object(
    'status', 'queued', 'error_code', null, 'error_message', null, 'finished_at', null,
    'started_at', null, 'heartbeat_at', null, 'worker_call_id', null,
    'progress', jsonb_build_object('phase', 'queued')));
end $$;

select svc_private.restrict_to_service(array[
  'take_separation', 'retry_separation', 'waiting_separations', 'take_requeued_jobs']);
select svc_private.grant_to_worker(array['take_separation']);
