-- A model version's preview (the held-out original and the model's conversion of it, the
-- pair its quality report was measured on) lives beside its weights, under
-- `models/<version>/`. Retention must treat those objects as the model's: a live model
-- version claims everything under its prefix, and purging a profile queues the preview with
-- the weights. Safe to run twice.

-- As in 20261122000004_retention.sql, with the preview queued beside model and config.
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
      select unnest(array[input_key, output_key]) from public.conversion_jobs
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

-- As in 20261122000004_retention.sql, except that a model version claims every object
-- under its own prefix (weights, config, preview), not only the two keys its row names.
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
                       and k in (c.input_key, coalesce(c.output_key, format(
                         'vc/users/%s/profiles/%s/conversions/%s/output.wav',
                         c.user_id, c.profile_id, c.id))))
    and not exists (select 1 from public.training_jobs t
                     where t.status in ('queued', 'running')
                       and k like format('vc/users/%s/profiles/%s/models/%%',
                                         t.user_id, t.profile_id))
$$;

select svc_private.restrict_to_service(array['unclaimed_object_keys']);
