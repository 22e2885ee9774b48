-- Every state transition and quota rule, as functions the service calls by name.
-- All are `security definer` with an empty search_path; none may be executed by anon or
-- authenticated (the grants at the end). Each takes the acting user's id where a user acts,
-- and treats "not yours" exactly like "does not exist".

-- Profiles ------------------------------------------------------------------------------

create or replace function public.create_profile(p_user_id uuid, p_name text, p_max_profiles integer)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles;
begin
  if not exists (select 1 from auth.users where id = p_user_id) then
    perform svc_private.raise_error('USER_NOT_FOUND', 'Your account no longer exists.');
  end if;
  perform pg_advisory_xact_lock(hashtextextended('svc:profiles:' || p_user_id::text, 0));
  if (select count(*) from public.voice_profiles
       where user_id = p_user_id and deleted_at is null) >= p_max_profiles then
    perform svc_private.raise_error('PROFILE_LIMIT',
      format('You can have at most %s voice profiles. Delete one to make room.', p_max_profiles),
      jsonb_build_object('max_profiles', p_max_profiles));
  end if;
  if exists (select 1 from public.voice_profiles where user_id = p_user_id
               and deleted_at is null and lower(btrim(name)) = lower(btrim(p_name))) then
    perform svc_private.raise_error('PROFILE_NAME_TAKEN',
      'You already have a voice profile with that name.', jsonb_build_object('name', p_name));
  end if;
  insert into public.voice_profiles (user_id, name) values (p_user_id, btrim(p_name))
  returning * into v_profile;
  return svc_private.profile_json(v_profile);
end $$;

create or replace function public.list_profiles(p_user_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(svc_private.profile_json(p) order by p.created_at desc), '[]'::jsonb)
  from public.voice_profiles p where p.user_id = p_user_id and p.deleted_at is null
$$;

create or replace function public.get_profile(p_user_id uuid, p_profile_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles;
begin
  select * into v_profile from public.voice_profiles
   where id = p_profile_id and user_id = p_user_id and deleted_at is null;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That voice profile does not exist.',
                                    jsonb_build_object('profile_id', p_profile_id));
  end if;
  return svc_private.profile_json(v_profile) || jsonb_build_object(
    'active_model', (select to_jsonb(m) from public.model_versions m
                      where m.id = v_profile.active_model_version_id),
    'recent_trainings', (select coalesce(jsonb_agg(to_jsonb(t) order by t.created_at desc), '[]')
                           from (select * from public.training_jobs
                                  where profile_id = p_profile_id
                                  order by created_at desc limit 5) t),
    'recent_conversions', (select coalesce(jsonb_agg(to_jsonb(c) order by c.created_at desc), '[]')
                             from (select * from public.conversion_jobs
                                    where profile_id = p_profile_id
                                    order by created_at desc limit 5) c));
end $$;

create or replace function public.delete_profile(p_user_id uuid, p_profile_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles := svc_private.owned_profile(p_user_id, p_profile_id);
begin
  if exists (select 1 from public.training_jobs where profile_id = p_profile_id
               and status in ('queued', 'running'))
     or exists (select 1 from public.conversion_jobs where profile_id = p_profile_id
                  and status in ('awaiting_upload', 'queued', 'running')) then
    perform svc_private.raise_error('PROFILE_BUSY',
      'This profile has a training or conversion in progress. Cancel it first.',
      jsonb_build_object('profile_id', p_profile_id));
  end if;
  update public.dataset_files set status = 'deleted'
   where profile_id = p_profile_id and status <> 'deleted';
  update public.voice_profiles set deleted_at = now(), status = 'disabled', updated_at = now()
   where id = p_profile_id returning * into v_profile;
  return svc_private.profile_json(v_profile);
end $$;

-- Dataset -------------------------------------------------------------------------------

create or replace function public.register_upload(
  p_user_id uuid, p_profile_id uuid, p_file_id uuid, p_object_key text, p_filename text,
  p_content_type text, p_size_bytes bigint, p_max_files integer
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_file public.dataset_files;
begin
  perform svc_private.owned_profile(p_user_id, p_profile_id);
  if p_object_key not like format('vc/users/%s/profiles/%s/dataset/%s/%%',
                                  p_user_id, p_profile_id, p_file_id) then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The object key does not match its owner.',
                                    jsonb_build_object('object_key', p_object_key));
  end if;
  if (select count(*) from public.dataset_files
       where profile_id = p_profile_id and status in ('pending', 'ready')) >= p_max_files then
    perform svc_private.raise_error('TOO_MANY_FILES',
      format('A profile holds at most %s dataset files. Delete some first.', p_max_files),
      jsonb_build_object('max_files', p_max_files));
  end if;
  insert into public.dataset_files
    (id, profile_id, user_id, object_key, filename, content_type, size_bytes)
  values (p_file_id, p_profile_id, p_user_id, p_object_key, p_filename, p_content_type,
          p_size_bytes)
  returning * into v_file;
  return to_jsonb(v_file);
end $$;

create or replace function public.list_dataset_files(p_user_id uuid, p_profile_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
begin
  if not exists (select 1 from public.voice_profiles where id = p_profile_id
                   and user_id = p_user_id and deleted_at is null) then
    perform svc_private.raise_error('NOT_FOUND', 'That voice profile does not exist.',
                                    jsonb_build_object('profile_id', p_profile_id));
  end if;
  return (select coalesce(jsonb_agg(to_jsonb(f) order by f.created_at, f.id), '[]'::jsonb)
            from public.dataset_files f
           where f.profile_id = p_profile_id and f.status <> 'deleted');
end $$;

create or replace function public.delete_dataset_file(
  p_user_id uuid, p_profile_id uuid, p_file_id uuid
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_file public.dataset_files;
begin
  update public.dataset_files set status = 'deleted'
   where id = p_file_id and user_id = p_user_id and profile_id = p_profile_id
     and status <> 'deleted'
  returning * into v_file;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That dataset file does not exist.',
                                    jsonb_build_object('file_id', p_file_id));
  end if;
  return to_jsonb(v_file);
end $$;

-- The probe's verdict. Only a pending file takes one, so a duplicated event cannot probe a
-- file twice; the profile lock keeps the dataset total exact under concurrent probes.
create or replace function public.record_probe(
  p_file_id uuid, p_etag text, p_size_bytes bigint, p_probe jsonb, p_reject_code text,
  p_reject_message text, p_max_total_seconds double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_file public.dataset_files;
  v_ready double precision;
  v_code text := p_reject_code;
  v_message text := p_reject_message;
begin
  select * into v_file from public.dataset_files where id = p_file_id;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That dataset file does not exist.',
                                    jsonb_build_object('file_id', p_file_id));
  end if;
  perform 1 from public.voice_profiles where id = v_file.profile_id for update;
  select * into v_file from public.dataset_files where id = p_file_id for update;
  if v_file.status <> 'pending' then
    return to_jsonb(v_file);
  end if;
  if v_code is null then
    select coalesce(sum(duration_sec), 0) into v_ready from public.dataset_files
     where profile_id = v_file.profile_id and status = 'ready';
    if v_ready + (p_probe ->> 'duration_sec')::double precision > p_max_total_seconds then
      v_code := 'DATASET_FULL';
      v_message := format('This file would take the dataset past %s minutes. Delete something first.',
                          round((p_max_total_seconds / 60)::numeric, 1));
    end if;
  end if;
  update public.dataset_files set
    status = case when v_code is null then 'ready' else 'rejected' end,
    etag = p_etag,
    size_bytes = coalesce(p_size_bytes, size_bytes),
    duration_sec = (p_probe ->> 'duration_sec')::double precision,
    sample_rate = (p_probe ->> 'sample_rate')::integer,
    channels = (p_probe ->> 'channels')::integer,
    format = p_probe ->> 'format',
    loudness_lufs = (p_probe ->> 'loudness_lufs')::double precision,
    peak_dbfs = (p_probe ->> 'peak_dbfs')::double precision,
    clipping_ratio = (p_probe ->> 'clipping_ratio')::double precision,
    silence_ratio = (p_probe ->> 'silence_ratio')::double precision,
    snr_db = (p_probe ->> 'snr_db')::double precision,
    quality_grade = p_probe ->> 'quality_grade',
    quality_notes = p_probe ->> 'quality_notes',
    reject_code = v_code,
    reject_message = v_message,
    probed_at = now()
  where id = p_file_id
  returning * into v_file;
  return to_jsonb(v_file);
end $$;

-- Jobs, shared by both kinds -------------------------------------------------------------

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

-- Progress and liveness in one write; the returned status tells the worker to stop when the
-- job was canceled meanwhile.
create or replace function public.heartbeat_job(p_kind text, p_job_id uuid, p_progress jsonb)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if v_job ->> 'status' <> 'running' then
    perform svc_private.invalid_transition(p_kind, v_job, 'running');
  end if;
  return svc_private.update_job(p_kind, v_job, jsonb_build_object(
    'progress', coalesce(p_progress, '{}'::jsonb), 'heartbeat_at', now()));
end $$;

create or replace function public.set_job_call_id(p_kind text, p_job_id uuid, p_call_id text)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  return svc_private.update_job(p_kind, v_job, jsonb_build_object('modal_call_id', p_call_id));
end $$;

create or replace function public.fail_job(
  p_kind text, p_job_id uuid, p_error_code text, p_error_message text
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
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

-- Training ------------------------------------------------------------------------------

create or replace function public.start_training(
  p_user_id uuid, p_profile_id uuid, p_params jsonb, p_min_seconds double precision,
  p_max_seconds double precision, p_default_limit integer, p_max_active integer default 1
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

create or replace function public.finish_training(
  p_job_id uuid, p_model_version_id uuid, p_model_key text, p_config_key text,
  p_size_bytes bigint, p_metrics jsonb
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job('training', p_job_id);
  v_prefix text;
begin
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
  return svc_private.update_job('training', v_job, jsonb_build_object(
    'status', 'succeeded', 'finished_at', now(), 'quota_state', 'charged',
    'progress', v_job -> 'progress' || jsonb_build_object('phase', 'succeeded')));
end $$;

-- Conversion ----------------------------------------------------------------------------

create or replace function public.create_conversion(
  p_user_id uuid, p_profile_id uuid, p_job_id uuid, p_model_version_id uuid, p_params jsonb,
  p_input_key text, p_input_filename text, p_input_size_bytes bigint,
  p_upload_expires_at timestamptz, p_default_limit integer, p_max_active integer default 1
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

-- The input's upload event: awaiting_upload → queued. A duplicate or late event is a no-op.
create or replace function public.queue_conversion(p_job_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job('conversion', p_job_id);
begin
  if v_job ->> 'status' <> 'awaiting_upload' then
    return v_job;
  end if;
  return svc_private.update_job('conversion', v_job, jsonb_build_object(
    'status', 'queued', 'progress', jsonb_build_object('phase', 'queued')));
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
  return svc_private.update_job('conversion', v_job, jsonb_build_object(
    'status', 'succeeded', 'finished_at', now(), 'quota_state', 'charged',
    'progress', v_job -> 'progress' || jsonb_build_object('phase', 'succeeded', 'percent', 100)));
end $$;

-- Quotas --------------------------------------------------------------------------------

create or replace function public.quota_status(
  p_user_id uuid, p_trainings_per_month integer, p_conversions_per_day integer
) returns jsonb language sql stable security definer set search_path = '' as $$
  select jsonb_build_object(
    'training', svc_private.quota_usage(p_user_id, 'training', p_trainings_per_month),
    'conversion', svc_private.quota_usage(p_user_id, 'conversion', p_conversions_per_day))
$$;

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
  select jsonb_build_object(
    'training', count(*) filter (where kind = 'training'),
    'conversion', count(*) filter (where kind = 'conversion'))
  from rolled
$$;

-- Maintenance ---------------------------------------------------------------------------

-- Fails jobs whose worker went silent or never started, cancels conversions whose upload
-- never came, and refunds each. Candidates are re-checked under the row lock, so a job that
-- moved on meanwhile is left alone.
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
  loop
    v_job := svc_private.lock_job(r.kind, r.id);
    v_reason := svc_private.stale_reason(v_job, p_heartbeat_timeout_sec, p_queued_timeout_sec);
    if v_reason = 'UPLOAD_EXPIRED' then
      v_job := svc_private.end_job(r.kind, v_job, 'canceled', v_reason,
        'The input was not uploaded before its upload link expired.');
    elsif v_reason = 'NOT_STARTED' then
      v_job := svc_private.end_job(r.kind, v_job, 'failed', v_reason,
        'The job waited too long for a worker. Your quota was refunded; please try again.');
    elsif v_reason = 'WORKER_LOST' then
      v_job := svc_private.end_job(r.kind, v_job, 'failed', v_reason,
        'The worker stopped responding. Your quota was refunded; please try again.');
    end if;
    if v_reason is not null then
      v_reaped := v_reaped || jsonb_build_object('kind', r.kind, 'id', r.id,
                                                 'status', v_job ->> 'status',
                                                 'error_code', v_reason);
    end if;
  end loop;
  return v_reaped;
end $$;

-- Idempotency keys for at-least-once deliveries: true the first time a key is seen.
create or replace function public.record_event(p_source text, p_event_id text)
returns jsonb language plpgsql security definer set search_path = '' as $$
begin
  insert into public.processed_events (source, event_id) values (p_source, p_event_id)
  on conflict do nothing;
  return jsonb_build_object('new', found);
end $$;

-- Liveness for the API's health check. --------------------------------------------------

create or replace function public.health()
returns jsonb language sql stable security definer set search_path = '' as $$
  select jsonb_build_object('ok', true, 'now', now())
$$;

-- Grants: only the service (postgres / service_role) may call any of this. -----------------

select svc_private.restrict_to_service();
