-- A spoken line's WAV and MP3 (`speech/<job>/speech.{wav,mp3}`) are in the key layout the
-- orphan sweep parses (pipeline/keys.py), so the sweep now sees them: a line a worker uploaded
-- and never recorded (its job erased or failed before the finish) is swept like any stray
-- result, while a text job that still holds its files claims them.

create or replace function public.unclaimed_object_keys(p_keys jsonb)
returns jsonb language sql stable security definer set search_path = '' as $$
  with keyed as (
    select k, regexp_match(k,
      '^vc/users/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/profiles/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/(models|conversions|instant-jobs|speech)/(?:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/)?'
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
    and not exists (select 1 from public.instant_voices v where v.reference_key = p.k)
    and not (p.area = 'instant-jobs' and exists (
               select 1 from public.instant_jobs j
                where j.id = p.id and j.user_id = p.user_id and j.profile_id = p.profile_id
                  and p.k = any (array[j.input_key, j.output_key]
                                 || svc_private.instant_part_keys(j))))
    and not (p.area = 'speech' and exists (
               select 1 from public.text_jobs t
                where t.id = p.id and t.user_id = p.user_id and t.profile_id = p.profile_id
                  and t.files_removed_at is null
                  and p.k = any (svc_private.text_keys(t.user_id, t.profile_id, t.id))))
$$;
