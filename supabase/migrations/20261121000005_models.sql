-- Model versions: listing, activation and download lookups, all owner-checked.

create or replace function public.list_model_versions(p_user_id uuid, p_profile_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
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
            from public.model_versions m where m.profile_id = p_profile_id);
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

-- The files a training job trains on: the profile's ready dataset at the time it runs.
create or replace function public.training_inputs(p_job_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', f.id, 'object_key', f.object_key, 'duration_sec', f.duration_sec)
         order by f.created_at, f.id), '[]'::jsonb)
  from public.training_jobs j
  join public.dataset_files f on f.profile_id = j.profile_id and f.status = 'ready'
  where j.id = p_job_id
$$;

select svc_private.restrict_to_service(array[
  'list_model_versions', 'get_model_version', 'activate_model_version', 'training_inputs']);
