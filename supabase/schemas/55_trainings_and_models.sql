-- Trainings (start, inputs, pitch, finish) and the model versions they produce.

set check_function_bodies = off;

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

-- The files a training job trains on: the profile's ready dataset at the time it runs.
-- A full mix never trains; its vocal does.
create or replace function public.training_inputs(p_job_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', f.id, 'object_key', f.object_key, 'duration_sec', f.duration_sec,
           'etag', f.etag, 'size_bytes', f.size_bytes, 'sample_rate', f.sample_rate,
           'channels', f.channels)
         order by f.created_at, f.id), '[]'::jsonb)
  from public.training_jobs j
  join public.dataset_files f on f.profile_id = j.profile_id and f.status = 'ready'
                             and not f.full_mix
  where j.id = p_job_id
$$;

create or replace function public.record_training_pitch(p_job_id uuid, p_pitch_range jsonb)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job('training', p_job_id);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if v_job ->> 'status' <> 'running' then
    perform svc_private.invalid_transition('training', v_job, 'running');
  end if;
  update public.training_jobs set pitch_range = p_pitch_range where id = p_job_id
  returning to_jsonb(training_jobs.*) into v_job;
  return v_job;
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

-- A new model version carries the pitch range its training job recorded.
create or replace function svc_private.model_version_pitch()
returns trigger language plpgsql security definer set search_path = '' as $$
begin
  if new.pitch_range is null then
    select j.pitch_range into new.pitch_range
      from public.training_jobs j where j.id = new.training_job_id;
  end if;
  return new;
end $$;
create trigger model_version_pitch before insert on public.model_versions
  for each row execute function svc_private.model_version_pitch();

-- Newest first, at most p_limit (1–200).
create or replace function public.list_model_versions(
  p_user_id uuid, p_profile_id uuid, p_limit integer default 50
) returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_active uuid;
begin
  select active_model_version_id into v_active from public.voice_profiles
   where id = p_profile_id and user_id = p_user_id and deleted_at is null;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That voice profile does not exist.',
                                    jsonb_build_object('profile_id', p_profile_id));
  end if;
  return (select coalesce(jsonb_agg(to_jsonb(m) || jsonb_build_object('active', m.id = v_active)
                                    order by m.created_at desc), '[]'::jsonb)
            from (select * from public.model_versions where profile_id = p_profile_id
                   order by created_at desc limit least(greatest(p_limit, 1), 200)) m);
end $$;

create or replace function public.get_model_version(p_user_id uuid, p_model_version_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_model jsonb;
begin
  select to_jsonb(m) || jsonb_build_object('active', p.active_model_version_id = m.id)
    into v_model
    from public.model_versions m join public.voice_profiles p on p.id = m.profile_id
   where m.id = p_model_version_id and m.user_id = p_user_id and p.deleted_at is null;
  if v_model is null then
    perform svc_private.raise_error('NOT_FOUND', 'That model version does not exist.',
                                    jsonb_build_object('model_version_id', p_model_version_id));
  end if;
  return v_model;
end $$;

create or replace function public.activate_model_version(
  p_user_id uuid, p_profile_id uuid, p_model_version_id uuid
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles := svc_private.owned_profile(p_user_id, p_profile_id);
begin
  if not exists (select 1 from public.model_versions where id = p_model_version_id
                   and profile_id = p_profile_id and status = 'ready') then
    perform svc_private.raise_error('NOT_FOUND', 'That model version does not exist.',
                                    jsonb_build_object('model_version_id', p_model_version_id));
  end if;
  update public.voice_profiles
     set active_model_version_id = p_model_version_id, status = 'ready', updated_at = now()
   where id = p_profile_id returning * into v_profile;
  return svc_private.profile_json(v_profile);
end $$;

-- The training work volume holds a person's raw recordings, pieces, features and checkpoints
-- while a training runs. Which of its directories may stay is the database's call: a live
-- training's (it may resume there), and a budget-stopped one's for a grace period (requeued
-- after the budget resets, it resumes from its checkpoints). Everything else — finished,
-- canceled, failed, reaped, or a job erased with its person — goes at the next sweep
-- (`pipeline/work_dirs.py`, run by the retention cron and after every erasure).
create or replace function public.training_work_to_keep(
  p_job_ids jsonb, p_grace_seconds integer
) returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(id), '[]'::jsonb) from public.training_jobs
   where id in (select jsonb_array_elements_text(p_job_ids)::uuid)
     and (status in ('queued', 'running')
          or (status = 'failed' and error_code = 'GPU_BUDGET_EXHAUSTED'
              and finished_at > now() - make_interval(secs => p_grace_seconds)))
$$;
