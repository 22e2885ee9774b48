-- Song conversions: a conversion whose params say `input_kind: "song"` leaves two results
-- beside its output (the mix): the converted vocal and the instrumental. Their keys follow
-- from the row, so no column holds them; every rule that queues or claims a conversion's
-- objects (profile purge, retention, the orphan sweep) now reads them from one function.
-- The same rules also treat a model version's preview (preview-original.wav and
-- preview-converted.wav under `models/<version>/`) as the model's.

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
revoke all on function svc_private.conversion_part_keys(uuid, uuid, uuid, jsonb) from public;

-- As in 20261122000004_retention.sql, with a model version's preview (beside its weights)
-- and a song conversion's parts queued too.
create or replace function svc_private.purge_profiles(p_profile_ids uuid[], p_reason text)
returns jsonb language plpgsql as $$
declare
  v_objects integer := 0;
  v_counts jsonb;
  r record;
begin
  for r in select id, user_id from public.voice_profiles where id = any (p_profile_ids) loop
    v_objects := v_objects + svc_private.enqueue_deletions(r.user_id, array(
      select object_key from public.dataset_files where profile_id = r.id
      union all
      select unnest(array[
          model_key, config_key,
          format('vc/users/%s/profiles/%s/models/%s/preview-original.wav',
                 user_id, profile_id, id),
          format('vc/users/%s/profiles/%s/models/%s/preview-converted.wav',
                 user_id, profile_id, id)])
        from public.model_versions
       where profile_id = r.id
      union all
      select unnest(array[input_key, output_key]
                    || svc_private.conversion_part_keys(user_id, profile_id, id, params))
        from public.conversion_jobs
       where profile_id = r.id and files_removed_at is null), p_reason);
  end loop;
  update public.voice_profiles set active_model_version_id = null
   where id = any (p_profile_ids) and active_model_version_id is not null;
  with c as (delete from public.conversion_jobs where profile_id = any (p_profile_ids)
             returning 1),
       m as (delete from public.model_versions where profile_id = any (p_profile_ids)
             returning 1)
  select jsonb_build_object('conversion_jobs', (select count(*) from c),
                            'model_versions', (select count(*) from m))
    into v_counts;
  with t as (delete from public.training_jobs where profile_id = any (p_profile_ids)
             returning 1),
       f as (delete from public.dataset_files where profile_id = any (p_profile_ids)
             returning 1)
  select v_counts || jsonb_build_object('training_jobs', (select count(*) from t),
                                        'dataset_files', (select count(*) from f))
    into v_counts;
  with p as (delete from public.voice_profiles where id = any (p_profile_ids) returning 1)
  select v_counts || jsonb_build_object('profiles', (select count(*) from p),
                                        'objects_queued', v_objects)
    into v_counts;
  return v_counts;
end $$;

-- As in 20261122000004_retention.sql, with a song conversion's parts queued with its input
-- and output.
create or replace function public.apply_retention(
  p_conversion_retention_sec integer, p_profile_grace_sec integer
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_dataset integer := 0;
  v_conversions integer := 0;
  v_profiles uuid[];
  v_purged jsonb;
  r record;
begin
  for r in
    update public.dataset_files f set object_removed_at = now()
     where f.status in ('rejected', 'deleted') and f.object_removed_at is null
       and exists (select 1 from public.voice_profiles p
                    where p.id = f.profile_id and p.deleted_at is null)
    returning f.user_id, f.object_key
  loop
    v_dataset := v_dataset + svc_private.enqueue_deletions(r.user_id, array[r.object_key],
                                                           'dataset_file_unused');
  end loop;

  for r in
    update public.conversion_jobs c set files_removed_at = now()
     where c.files_removed_at is null and svc_private.is_terminal(c.status)
       and (c.status = 'canceled'
            or coalesce(c.finished_at, c.created_at)
               < now() - make_interval(secs => p_conversion_retention_sec))
    returning c.user_id, c.input_key, c.output_key, c.status,
              svc_private.conversion_part_keys(c.user_id, c.profile_id, c.id, c.params) as parts
  loop
    v_conversions := v_conversions + svc_private.enqueue_deletions(r.user_id,
      array[r.input_key, r.output_key] || r.parts,
      case when r.status = 'canceled' then 'conversion_abandoned' else 'conversion_expired' end);
  end loop;

  select coalesce(array_agg(id), '{}') into v_profiles from public.voice_profiles
   where deleted_at is not null
     and deleted_at < now() - make_interval(secs => p_profile_grace_sec);
  v_purged := svc_private.purge_profiles(v_profiles, 'profile_deleted');

  return jsonb_build_object('dataset_objects_queued', v_dataset,
                            'conversion_objects_queued', v_conversions,
                            'profiles_purged', v_purged);
end $$;

-- As in 20261122000004_retention.sql, with a model version claiming its whole prefix
-- (weights, config, preview) and a live song conversion claiming its parts (the worker
-- uploads them a moment before it records the job's output).
create or replace function public.unclaimed_object_keys(p_keys jsonb)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(k order by k), '[]'::jsonb)
  from jsonb_array_elements_text(p_keys) k
  where not exists (select 1 from public.dataset_files f
                     where f.object_key = k and f.status in ('pending', 'ready'))
    and not exists (select 1 from public.model_versions m
                     where k in (m.model_key, m.config_key)
                        or k like format('vc/users/%s/profiles/%s/models/%s/%%',
                                         m.user_id, m.profile_id, m.id))
    and not exists (select 1 from public.conversion_jobs c
                     where c.files_removed_at is null
                       and (k in (c.input_key, coalesce(c.output_key, format(
                              'vc/users/%s/profiles/%s/conversions/%s/output.wav',
                              c.user_id, c.profile_id, c.id)))
                            or k = any (svc_private.conversion_part_keys(
                              c.user_id, c.profile_id, c.id, c.params))))
    and not exists (select 1 from public.training_jobs t
                     where t.status in ('queued', 'running')
                       and k like format('vc/users/%s/profiles/%s/models/%%',
                                         t.user_id, t.profile_id))
$$;
