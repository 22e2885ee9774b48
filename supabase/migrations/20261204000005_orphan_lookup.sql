-- The orphan sweep at scale (issue 23): `unclaimed_object_keys` compared every key with
-- every model version (a LIKE per pair) and every conversion (its part keys built per pair),
-- objects × (versions + conversions) with no index to help: the daily sweep would not finish
-- on a real bucket. Now each key is parsed once (the layout of pipeline/keys.py) and its
-- claimant looked up by primary key or unique key: the same answer (tests compare it with
-- the old function), in time proportional to the number of keys. (A version's weights and
-- config lie under its own prefix, which `finish_training` checks, so the prefix claims them.)
create or replace function public.unclaimed_object_keys(p_keys jsonb)
returns jsonb language sql stable security definer set search_path = '' as $$
  with keyed as (
    select k, regexp_match(k,
      '^vc/users/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/profiles/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/(models|conversions)/(?:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/)?'
    ) as m
    from jsonb_array_elements_text(p_keys) k
  ), parsed as (  -- a key outside the layout has no area: only exact keys can claim it
    select k, m[1]::uuid as user_id, m[2]::uuid as profile_id, coalesce(m[3], '') as area,
           m[4]::uuid as id
      from keyed
  )
  select coalesce(jsonb_agg(k order by k), '[]'::jsonb)
  from parsed p
  where not exists (select 1 from public.dataset_files f
                     where f.object_key = p.k and f.status in ('pending', 'ready'))
    and not (p.area = 'models' and exists (
               select 1 from public.model_versions m
                where m.id = p.id and m.user_id = p.user_id and m.profile_id = p.profile_id))
    and not exists (select 1 from public.conversion_jobs c
                     where c.files_removed_at is null
                       and (c.input_key = p.k or c.output_key = p.k))
    and not (p.area = 'conversions' and exists (
               select 1 from public.conversion_jobs c
                where c.id = p.id and c.files_removed_at is null
                  and (p.k = format('vc/users/%s/profiles/%s/conversions/%s/output.wav',
                                    c.user_id, c.profile_id, c.id)
                       or p.k = any (svc_private.conversion_part_keys(
                                       c.user_id, c.profile_id, c.id, c.params)))))
    and not (p.area = 'models' and exists (
               select 1 from public.training_jobs t
                where t.profile_id = p.profile_id and t.user_id = p.user_id
                  and t.status in ('queued', 'running')))
$$;

-- A key under `models/` is claimed while its profile trains: the live trainings of a profile
-- are found without reading every training it ever ran.
create index if not exists training_jobs_profile_active_idx
  on public.training_jobs (profile_id) where status in ('queued', 'running');
