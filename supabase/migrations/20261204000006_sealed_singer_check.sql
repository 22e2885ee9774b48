-- The singer check reads sealed bytes (issue 23): it downloaded each ready file by key alone,
-- so bytes PUT again through a still-valid upload URL after the probe were what it decoded
-- (and a forged header could make the resampler ask for terabytes). It now gets what the
-- probe recorded, as the training does (`training_inputs`), and reads exactly those bytes.
-- Was: 20261122000012_dataset_separation.sql.
create or replace function public.singer_check_files(p_profile_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', f.id, 'object_key', f.object_key, 'etag', f.etag, 'size_bytes', f.size_bytes,
           'sample_rate', f.sample_rate, 'channels', f.channels, 'duration_sec', f.duration_sec)
         order by f.created_at, f.id), '[]'::jsonb)
    from public.dataset_files f
   where f.profile_id = p_profile_id and f.status = 'ready' and not f.full_mix
     and not exists (select 1 from public.dataset_file_embeddings e where e.file_id = f.id)
$$;
