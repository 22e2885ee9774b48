-- Voice profiles and their datasets: uploads, the probe's start and verdict, deletes, and
-- uploads whose event never came.

set check_function_bodies = off;

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

-- Deletes a profile and its dataset (retention purges its rows and objects of every kind after
-- the grace period). Every live job on it, of every kind (`svc_private.jobs`), is canceled as
-- erasure cancels them, with its kind's refund; the worker call ids come back for the API to
-- signal (a worker that misses it stops at its next heartbeat).
create or replace function public.delete_profile(p_user_id uuid, p_profile_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles := svc_private.owned_profile(p_user_id, p_profile_id);
  r record;
  v_job jsonb;
  v_calls jsonb := '[]'::jsonb;
  v_canceled integer := 0;
begin
  perform svc_private.lock_live_jobs(p_user_id, p_profile_id);
  for r in
    select kind, id from svc_private.jobs
     where user_id = p_user_id and profile_id = p_profile_id
       and status in ('awaiting_upload', 'queued', 'running')
     order by kind, id
  loop
    v_job := svc_private.lock_job(r.kind, r.id);
    if not svc_private.is_terminal(v_job ->> 'status') then
      v_job := svc_private.end_job(r.kind, v_job, 'canceled', 'CANCELED',
                                   'Canceled because its voice was deleted.');
      v_canceled := v_canceled + 1;
      if v_job ->> 'worker_call_id' is not null then
        v_calls := v_calls || to_jsonb(v_job ->> 'worker_call_id');
      end if;
    end if;
  end loop;
  update public.dataset_files set status = 'deleted'
   where profile_id = p_profile_id and status <> 'deleted';
  update public.voice_profiles set deleted_at = now(), status = 'disabled', updated_at = now()
   where id = p_profile_id returning * into v_profile;
  return svc_private.profile_json(v_profile)
         || jsonb_build_object('jobs_canceled', v_canceled, 'call_ids', v_calls);
end $$;

-- Registers an upload as a pending dataset file (the API then presigns its PUT), recording
-- whether it is a full mix.
create or replace function public.register_upload(
  p_user_id uuid, p_profile_id uuid, p_file_id uuid, p_object_key text, p_filename text,
  p_content_type text, p_size_bytes bigint, p_max_files integer, p_full_mix boolean default false
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
    (id, profile_id, user_id, object_key, filename, content_type, size_bytes, full_mix)
  values (p_file_id, p_profile_id, p_user_id, p_object_key, p_filename, p_content_type,
          p_size_bytes, coalesce(p_full_mix, false))
  returning * into v_file;
  return to_jsonb(v_file);
end $$;

-- The dataset as it matters: every pending and ready file (bounded by the file cap), then the
-- most recent refusals, so a person still sees why a file was turned away.
create or replace function public.list_dataset_files(
  p_user_id uuid, p_profile_id uuid, p_max_files integer default 100,
  p_rejected_limit integer default 20
) returns jsonb language plpgsql stable security definer set search_path = '' as $$
begin
  if not exists (select 1 from public.voice_profiles where id = p_profile_id
                   and user_id = p_user_id and deleted_at is null) then
    perform svc_private.raise_error('NOT_FOUND', 'That voice profile does not exist.',
                                    jsonb_build_object('profile_id', p_profile_id));
  end if;
  return (select coalesce(jsonb_agg(to_jsonb(f) order by f.created_at, f.id), '[]'::jsonb)
            from ((select * from public.dataset_files
                    where profile_id = p_profile_id and status in ('pending', 'ready')
                    order by created_at, id limit least(greatest(p_max_files, 1), 1000))
                  union all
                  (select * from public.dataset_files
                    where profile_id = p_profile_id and status = 'rejected'
                    order by created_at desc, id
                    limit least(greatest(p_rejected_limit, 0), 100))) f);
end $$;

create or replace function public.get_dataset_file(p_file_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select to_jsonb(f) from public.dataset_files f where f.id = p_file_id
$$;

-- Deletes a dataset file and refreshes the profile's singer check. Deleting a mix deletes its
-- separated vocal too and cancels a separation still in flight (its worker stops at its next
-- heartbeat).
create or replace function public.delete_dataset_file(
  p_user_id uuid, p_profile_id uuid, p_file_id uuid, p_min_similarity double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_file public.dataset_files;
  v_job jsonb;
  v_job_id uuid;
begin
  perform 1 from public.voice_profiles where id = p_profile_id for update;
  update public.dataset_files set status = 'deleted'
   where id = p_file_id and user_id = p_user_id and profile_id = p_profile_id
     and status <> 'deleted'
  returning * into v_file;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That dataset file does not exist.',
                                    jsonb_build_object('file_id', p_file_id));
  end if;
  if v_file.full_mix then
    select id into v_job_id from public.separation_jobs where source_file_id = p_file_id;
    if v_job_id is not null then
      v_job := svc_private.lock_job('separation', v_job_id);
      if not svc_private.is_terminal(v_job ->> 'status') then
        perform svc_private.end_job('separation', v_job, 'canceled', 'CANCELED',
                                    'Canceled because its song was deleted.');
      end if;
    end if;
    update public.dataset_files set status = 'deleted'
     where derived_from = p_file_id and status <> 'deleted';
  end if;
  perform svc_private.refresh_singer_check(p_profile_id, p_min_similarity);
  return to_jsonb(v_file);
end $$;

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

-- The probe's verdict. Only a pending file takes one, so a duplicated event cannot probe a
-- file twice; the profile lock keeps the dataset total exact under concurrent probes. A full
-- mix does not count toward the dataset's minutes (it never trains), and a ready one gets its
-- separation job, once (the job's source is unique).
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
  if v_code is null and not v_file.full_mix then
    select coalesce(sum(duration_sec), 0) into v_ready from public.dataset_files
     where profile_id = v_file.profile_id and status = 'ready' and not full_mix;
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
    voice_ratio = (p_probe ->> 'voice_ratio')::double precision,
    low_band_ratio = (p_probe ->> 'low_band_ratio')::double precision,
    noise_level = p_probe ->> 'noise_level',
    warnings = coalesce(p_probe -> 'warnings', '[]'::jsonb),
    quality_grade = p_probe ->> 'quality_grade',
    quality_notes = p_probe ->> 'quality_notes',
    reject_code = v_code,
    reject_message = v_message,
    probed_at = now()
  where id = p_file_id
  returning * into v_file;
  if v_file.status = 'ready' and v_file.full_mix then
    insert into public.separation_jobs (user_id, profile_id, source_file_id, progress)
    values (v_file.user_id, v_file.profile_id, v_file.id, jsonb_build_object('phase', 'queued'))
    on conflict (source_file_id) do nothing;
  end if;
  return to_jsonb(v_file);
end $$;

-- Pending uploads old enough that their event may have been lost. A fair share: each user's
-- oldest pending uploads first, taken round-robin across users, so one user's many stuck rows
-- cannot fill the batch.
create or replace function public.list_stale_uploads(p_older_than_sec integer, p_limit integer)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(to_jsonb(f) - 'turn' order by f.turn, f.created_at), '[]'::jsonb)
  from (select d.*, row_number() over (partition by d.user_id order by d.created_at) as turn
          from public.dataset_files d
         where d.status = 'pending'
           and d.created_at < now() - make_interval(secs => p_older_than_sec)
         order by turn, d.created_at limit least(greatest(p_limit, 1), 1000)) f
$$;

-- A pending upload whose object never appeared before its URL expired.
create or replace function public.expire_upload(p_file_id uuid)
returns jsonb language sql security definer set search_path = '' as $$
  update public.dataset_files
     set status = 'rejected', reject_code = 'UPLOAD_EXPIRED', probed_at = now(),
         reject_message = 'The upload did not arrive before its link expired. Please upload it again.'
   where id = p_file_id and status = 'pending'
  returning to_jsonb(dataset_files.*)
$$;
