-- Conversions: created awaiting their upload, queued when it arrives, finished with their
-- output (a song conversion also leaves its vocal and instrumental).

set check_function_bodies = off;

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

-- The model a conversion job converts with, looked up by the job alone: the worker holds a
-- job id, not a user, so it needs no owner-checked (user-facing) lookup.
create or replace function public.conversion_model(p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_model jsonb;
begin
  select to_jsonb(m) into v_model
    from public.conversion_jobs j
    join public.model_versions m on m.id = j.model_version_id
    join public.voice_profiles p on p.id = m.profile_id
   where j.id = p_job_id and p.deleted_at is null;
  if v_model is null then
    perform svc_private.raise_error('NOT_FOUND', 'That model version does not exist.',
                                    jsonb_build_object('job_id', p_job_id));
  end if;
  return v_model;
end $$;

create or replace function public.record_conversion_pitch(p_job_id uuid, p_pitch jsonb)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job('conversion', p_job_id);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if v_job ->> 'status' <> 'running' then
    perform svc_private.invalid_transition('conversion', v_job, 'running');
  end if;
  update public.conversion_jobs set pitch = p_pitch where id = p_job_id
  returning to_jsonb(conversion_jobs.*) into v_job;
  return v_job;
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

-- A song conversion's part keys; none for a vocal one.
create or replace function svc_private.conversion_part_keys(
  p_user_id uuid, p_profile_id uuid, p_job_id uuid, p_params jsonb
) returns text[] language sql immutable set search_path = '' as $$
  select case when p_params ->> 'input_kind' = 'song' then array[
    format('vc/users/%s/profiles/%s/conversions/%s/vocal.wav', p_user_id, p_profile_id, p_job_id),
    format('vc/users/%s/profiles/%s/conversions/%s/instrumental.wav',
           p_user_id, p_profile_id, p_job_id)]
  else '{}'::text[] end
$$;
