-- One lock order for every function that takes more than one of these rows (issue 23):
--
--     user (advisory) → profile → job → GPU spend → usage counters
--
-- `heartbeat_job` locks a job, then the user's spend. `erase_user_data` and `delete_profile`
-- ended one job (locking the spend to charge it) before locking the next, and
-- `register_separated_vocal` locked its job before the profile its new file points at, while
-- `delete_dataset_file` and `delete_profile` lock the profile first: Postgres broke each such
-- cycle by aborting one side (40P01), a 503 for a person or a failed worker. Now every
-- function takes the rows it needs in the order above: all of a user's profiles, then all
-- their live jobs (by id), and only then charges anything.

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

-- Was: 20261122000012_dataset_separation.sql. Profiles, then jobs, then the charges.
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
    select 'training' as kind, id from public.training_jobs
     where user_id = p_user_id and status in ('queued', 'running')
    union all
    select 'conversion', id from public.conversion_jobs
     where user_id = p_user_id and status in ('awaiting_upload', 'queued', 'running')
    union all
    select 'separation', id from public.separation_jobs
     where user_id = p_user_id and status in ('queued', 'running')
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

-- Was: 20261122000012_dataset_separation.sql. The profile, then its separations, then ends.
create or replace function public.delete_profile(p_user_id uuid, p_profile_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles := svc_private.owned_profile(p_user_id, p_profile_id);
  r record;
begin
  if exists (select 1 from public.training_jobs where profile_id = p_profile_id
               and status in ('queued', 'running'))
     or exists (select 1 from public.conversion_jobs where profile_id = p_profile_id
                  and status in ('awaiting_upload', 'queued', 'running')) then
    perform svc_private.raise_error('PROFILE_BUSY',
      'This profile has a training or conversion in progress. Cancel it first.',
      jsonb_build_object('profile_id', p_profile_id));
  end if;
  perform svc_private.lock_live_jobs(p_user_id, p_profile_id);
  for r in select id from public.separation_jobs
            where profile_id = p_profile_id and status in ('queued', 'running') loop
    perform svc_private.end_job('separation', svc_private.lock_job('separation', r.id),
                                'canceled', 'CANCELED', 'Canceled because its voice was deleted.');
  end loop;
  update public.dataset_files set status = 'deleted'
   where profile_id = p_profile_id and status <> 'deleted';
  update public.voice_profiles set deleted_at = now(), status = 'disabled', updated_at = now()
   where id = p_profile_id returning * into v_profile;
  return svc_private.profile_json(v_profile);
end $$;

-- Was: 20261122000012_dataset_separation.sql. The profile is locked before the job, as
-- delete_dataset_file and delete_profile do (the new file's row points at the profile).
create or replace function public.register_separated_vocal(
  p_job_id uuid, p_object_key text, p_filename text, p_size_bytes bigint
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb;
  v_source public.dataset_files;
  v_file public.dataset_files;
begin
  perform 1 from public.voice_profiles
   where id = (select profile_id from public.separation_jobs where id = p_job_id) for update;
  v_job := svc_private.lock_job('separation', p_job_id);
  if v_job ->> 'status' <> 'running' then
    return null;
  end if;
  select * into v_source from public.dataset_files
   where id = (v_job ->> 'source_file_id')::uuid;
  if v_source.status <> 'ready' then
    perform svc_private.end_job('separation', v_job, 'canceled', 'CANCELED',
                                'Canceled because its song was deleted.');
    return null;
  end if;
  if p_object_key not like format('vc/users/%s/profiles/%s/dataset/%s/%%', v_job ->> 'user_id',
                                  v_job ->> 'profile_id', v_job ->> 'derived_file_id') then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The object key does not match the job.',
                                    jsonb_build_object('object_key', p_object_key));
  end if;
  insert into public.dataset_files
    (id, profile_id, user_id, object_key, filename, content_type, size_bytes, derived_from)
  values ((v_job ->> 'derived_file_id')::uuid, v_source.profile_id, v_source.user_id,
          p_object_key, p_filename, 'audio/wav', p_size_bytes, v_source.id)
  on conflict (id) do nothing;
  select * into v_file from public.dataset_files where id = (v_job ->> 'derived_file_id')::uuid;
  return to_jsonb(v_file);
end $$;

select svc_private.restrict_to_service(array['erase_user_data', 'delete_profile',
                                        'register_separated_vocal']);
