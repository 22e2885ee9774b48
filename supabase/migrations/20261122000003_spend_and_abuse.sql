-- Spend and abuse: a monthly GPU-seconds budget charged from heartbeats, token-bucket rate
-- limits, sealed dataset files (the probed eTag is what trains), bounded probe retries with a
-- fair reconciler, and the operator's note hidden from users. Safe to run twice.

-- GPU budget ------------------------------------------------------------------------------

alter table public.quota_overrides
  add column if not exists gpu_seconds_per_month integer check (gpu_seconds_per_month >= 0);
alter table public.training_jobs
  add column if not exists gpu_seconds double precision not null default 0;
alter table public.conversion_jobs
  add column if not exists gpu_seconds double precision not null default 0;

-- What each user's workers have run this month, whatever became of the jobs.
create table if not exists public.gpu_spend (
  user_id uuid primary key references auth.users (id) on delete cascade,
  period_start date not null,
  seconds double precision not null default 0 check (seconds >= 0),
  updated_at timestamptz not null default now()
);
alter table public.gpu_spend enable row level security;
drop policy if exists gpu_spend_owner_select on public.gpu_spend;
create policy gpu_spend_owner_select on public.gpu_spend
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.gpu_spend from anon, authenticated;
grant select on table public.gpu_spend to authenticated;

-- The operator's note about a user stays with the operator: users read every other column.
revoke select on table public.quota_overrides from authenticated;
grant select (user_id, trainings_per_month, conversions_per_day, gpu_seconds_per_month,
              updated_at)
  on table public.quota_overrides to authenticated;

create or replace function svc_private.gpu_limit(p_user_id uuid, p_default integer)
returns integer language sql stable as $$
  select coalesce((select o.gpu_seconds_per_month from public.quota_overrides o
                    where o.user_id = p_user_id), p_default)
$$;

create or replace function svc_private.gpu_usage(p_user_id uuid, p_default integer)
returns jsonb language sql stable as $$
  with p as (
    select svc_private.period_start('training', now()) as start,
           svc_private.gpu_limit(p_user_id, p_default) as lim
  ), u as (
    select coalesce((select s.seconds from public.gpu_spend s, p
                      where s.user_id = p_user_id and s.period_start >= p.start), 0) as used
  )
  select jsonb_build_object(
    'used_seconds', round(u.used::numeric, 1), 'limit_seconds', p.lim,
    'remaining_seconds', case when p.lim is null then null
                              else round(greatest(p.lim - u.used, 0)::numeric, 1) end,
    'period_start', p.start, 'resets_at', svc_private.period_end('training', p.start))
  from p, u
$$;

-- Charges a running job for the time since its last heartbeat (a retried worker's claim
-- resets the heartbeat, so time a dead worker was gone is never charged). Returns the seconds
-- the user has spent this month.
create or replace function svc_private.charge_gpu(p_kind text, p_job jsonb)
returns double precision language plpgsql as $$
declare
  v_user uuid := (p_job ->> 'user_id')::uuid;
  v_period date := svc_private.period_start('training', now());
  v_delta double precision := 0;
  v_spent double precision;
begin
  if p_job ->> 'status' = 'running' then
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

create or replace function svc_private.require_gpu_budget(p_user_id uuid, p_default integer)
returns void language plpgsql as $$
declare
  v_usage jsonb := svc_private.gpu_usage(p_user_id, p_default);
begin
  if v_usage ->> 'limit_seconds' is not null
     and (v_usage ->> 'remaining_seconds')::double precision <= 0 then
    perform svc_private.raise_error('GPU_BUDGET_EXHAUSTED',
      format('You have used this month''s %s minutes of GPU time. More become available at %s UTC.',
             round((v_usage ->> 'limit_seconds')::numeric / 60, 1),
             to_char((v_usage ->> 'resets_at')::timestamptz at time zone 'UTC',
                     'YYYY-MM-DD HH24:MI')),
      v_usage);
  end if;
end $$;

-- Was: 20261121000002_helpers.sql. Now also charges the GPU time since the last heartbeat when
-- a worker fails or a user cancels (a reaped job's worker is gone: nothing more to charge).
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

-- Was: 20261121000003_functions.sql. Each heartbeat charges the time since the last one; a
-- user whose budget is spent has the job failed with GPU_BUDGET_EXHAUSTED, which the worker
-- reads from the returned row and stops on.
drop function if exists public.heartbeat_job(text, uuid, jsonb);
create or replace function public.heartbeat_job(
  p_kind text, p_job_id uuid, p_progress jsonb, p_gpu_seconds_per_month integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
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
  v_limit := svc_private.gpu_limit((v_job ->> 'user_id')::uuid, p_gpu_seconds_per_month);
  if v_limit is not null and v_spent >= v_limit then
    v_job := svc_private.end_job(p_kind, v_job, 'failed', 'GPU_BUDGET_EXHAUSTED',
      format('This month''s %s minutes of GPU time are used up, so the job stopped.',
             round(v_limit / 60.0, 1)));
  end if;
  return v_job;
end $$;

-- Was: 20261121000003_functions.sql. Now refuses to start while the GPU budget is spent.
drop function if exists public.start_training(uuid, uuid, jsonb, double precision,
                                              double precision, integer, integer);
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
   where profile_id = p_profile_id and status = 'ready';
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
  perform svc_private.require_gpu_budget(p_user_id, p_gpu_seconds_per_month);
  v_period := svc_private.reserve_quota(p_user_id, 'training', p_default_limit);
  -- The counter row is locked until commit, so this count cannot race another start.
  if (select count(*) from public.training_jobs
       where user_id = p_user_id and status in ('queued', 'running')) >= p_max_active then
    perform svc_private.raise_error('TRAINING_IN_PROGRESS',
      'A training is already running for your account. Wait for it or cancel it.',
      jsonb_build_object('max_active', p_max_active));
  end if;
  insert into public.training_jobs (user_id, profile_id, params, progress, quota_period_start)
  values (p_user_id, p_profile_id, coalesce(p_params, '{}'::jsonb),
          jsonb_build_object('phase', 'queued'), v_period)
  returning * into v_job;
  return to_jsonb(v_job);
end $$;

-- Was: 20261121000003_functions.sql. Now refuses to start while the GPU budget is spent.
drop function if exists public.create_conversion(uuid, uuid, uuid, uuid, jsonb, text, text, bigint,
                                                 timestamptz, integer, integer);
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
  perform svc_private.require_gpu_budget(p_user_id, p_gpu_seconds_per_month);
  v_period := svc_private.reserve_quota(p_user_id, 'conversion', p_default_limit);
  if (select count(*) from public.conversion_jobs where user_id = p_user_id
        and status in ('awaiting_upload', 'queued', 'running')) >= p_max_active then
    perform svc_private.raise_error('CONVERSION_IN_PROGRESS',
      'A conversion is already in progress for your account. Wait for it or cancel it.',
      jsonb_build_object('max_active', p_max_active));
  end if;
  insert into public.conversion_jobs
    (id, user_id, profile_id, model_version_id, params, input_key, input_filename,
     input_size_bytes, upload_expires_at, progress, quota_period_start)
  values (p_job_id, p_user_id, p_profile_id, v_model_id, coalesce(p_params, '{}'::jsonb),
          p_input_key, p_input_filename, p_input_size_bytes, p_upload_expires_at,
          jsonb_build_object('phase', 'awaiting_upload'), v_period)
  returning * into v_job;
  return to_jsonb(v_job);
end $$;

-- Was: 20261121000003_functions.sql. Now with the GPU budget beside the counted quotas.
drop function if exists public.quota_status(uuid, integer, integer);
create or replace function public.quota_status(
  p_user_id uuid, p_trainings_per_month integer, p_conversions_per_day integer,
  p_gpu_seconds_per_month integer default null
) returns jsonb language sql stable security definer set search_path = '' as $$
  select jsonb_build_object(
    'training', svc_private.quota_usage(p_user_id, 'training', p_trainings_per_month),
    'conversion', svc_private.quota_usage(p_user_id, 'conversion', p_conversions_per_day),
    'gpu', svc_private.gpu_usage(p_user_id, p_gpu_seconds_per_month))
$$;

-- Rate limits -------------------------------------------------------------------------------

-- One token bucket per subject ('user:<id>' or 'ip:<address>') and action.
create table if not exists public.rate_buckets (
  subject text not null,
  action text not null,
  tokens double precision not null,
  updated_at timestamptz not null default clock_timestamp(),
  primary key (subject, action)
);
alter table public.rate_buckets enable row level security;
revoke all on table public.rate_buckets from anon, authenticated;

-- Takes one token if the bucket (refilled at p_per_minute, holding at most p_burst) has one,
-- in a single upsert, so concurrent API containers share the bucket exactly. Returns whether
-- it was taken and, if not, how many seconds until one will be.
create or replace function public.take_rate_token(
  p_subject text, p_action text, p_burst integer, p_per_minute double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_now timestamptz := clock_timestamp();
  v_rate double precision := greatest(p_per_minute, 0) / 60.0;
  v_tokens double precision;
begin
  insert into public.rate_buckets as b (subject, action, tokens, updated_at)
  values (p_subject, p_action, p_burst - 1, v_now)
  on conflict (subject, action) do update
     set tokens = least(p_burst::double precision,
                        b.tokens + extract(epoch from v_now - b.updated_at) * v_rate) - 1,
         updated_at = v_now
   where least(p_burst::double precision,
               b.tokens + extract(epoch from v_now - b.updated_at) * v_rate) >= 1
  returning tokens into v_tokens;
  if found and p_burst >= 1 then
    return jsonb_build_object('allowed', true, 'remaining', floor(v_tokens));
  end if;
  select least(p_burst::double precision,
               b.tokens + extract(epoch from v_now - b.updated_at) * v_rate)
    into v_tokens from public.rate_buckets b where b.subject = p_subject and b.action = p_action;
  return jsonb_build_object(
    'allowed', false, 'remaining', 0,
    'retry_after', case when v_rate > 0 then ceil((1 - coalesce(v_tokens, 0)) / v_rate)
                        else 3600 end);
end $$;

-- Buckets untouched for a day are full again; the cron may drop them.
create or replace function public.prune_rate_buckets(p_older_than_sec integer default 86400)
returns jsonb language sql security definer set search_path = '' as $$
  with d as (
    delete from public.rate_buckets
     where updated_at < now() - make_interval(secs => p_older_than_sec)
    returning 1
  )
  select jsonb_build_object('deleted', count(*)) from d
$$;

-- Sealed dataset files and probe retries ----------------------------------------------------

alter table public.dataset_files
  add column if not exists probe_attempts integer not null default 0
    check (probe_attempts >= 0);

-- A probe worker's start on a pending file: counts the attempt, and once p_max_attempts have
-- been made without a verdict, rejects the file with PROBE_FAILED instead of trying again.
create or replace function public.begin_probe(p_file_id uuid, p_max_attempts integer)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_file public.dataset_files;
begin
  select * into v_file from public.dataset_files where id = p_file_id for update;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That dataset file does not exist.',
                                    jsonb_build_object('file_id', p_file_id));
  end if;
  if v_file.status <> 'pending' then
    return to_jsonb(v_file);
  end if;
  if v_file.probe_attempts >= p_max_attempts then
    update public.dataset_files
       set status = 'rejected', reject_code = 'PROBE_FAILED', probed_at = now(),
           reject_message = 'This file could not be checked after several tries. '
                            'Please export it again and upload the new file.'
     where id = p_file_id returning * into v_file;
    return to_jsonb(v_file);
  end if;
  update public.dataset_files set probe_attempts = probe_attempts + 1
   where id = p_file_id returning * into v_file;
  return to_jsonb(v_file);
end $$;

-- Was: 20261121000004_events.sql. Now a fair share: each user's oldest pending uploads first,
-- taken round-robin across users, so one user's many stuck rows cannot fill the batch.
create or replace function public.list_stale_uploads(p_older_than_sec integer, p_limit integer)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(to_jsonb(f) - 'turn' order by f.turn, f.created_at), '[]'::jsonb)
  from (select d.*, row_number() over (partition by d.user_id order by d.created_at) as turn
          from public.dataset_files d
         where d.status = 'pending'
           and d.created_at < now() - make_interval(secs => p_older_than_sec)
         order by turn, d.created_at limit least(greatest(p_limit, 1), 1000)) f
$$;

-- Was: 20261121000005_models.sql. Now with what the probe recorded (eTag, size, rate,
-- channels), so the worker reads exactly the bytes that were probed and checks them again.
create or replace function public.training_inputs(p_job_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', f.id, 'object_key', f.object_key, 'duration_sec', f.duration_sec,
           'etag', f.etag, 'size_bytes', f.size_bytes, 'sample_rate', f.sample_rate,
           'channels', f.channels)
         order by f.created_at, f.id), '[]'::jsonb)
  from public.training_jobs j
  join public.dataset_files f on f.profile_id = j.profile_id and f.status = 'ready'
  where j.id = p_job_id
$$;

select svc_private.restrict_to_service(array[
  'heartbeat_job', 'start_training', 'create_conversion', 'quota_status', 'take_rate_token',
  'prune_rate_buckets', 'begin_probe', 'list_stale_uploads', 'training_inputs']);
select svc_private.restrict_to_service(array[]::text[]);

-- The worker login (20261122000001_worker_role): heartbeat_job was re-created with a new
-- signature, and the probe worker calls begin_probe.
select svc_private.grant_to_worker(array['heartbeat_job', 'begin_probe']);
