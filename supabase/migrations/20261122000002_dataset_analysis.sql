-- Dataset analysis: what the probe now measures (voice activity, the noise under the voice,
-- energy below the voice, graded warnings) and the one-singer check a worker runs after it.

alter table public.dataset_files
  add column if not exists voice_ratio double precision check (voice_ratio between 0 and 1),
  add column if not exists low_band_ratio double precision
    check (low_band_ratio between 0 and 1),
  add column if not exists noise_level text check (noise_level in ('clean', 'some', 'noisy')),
  add column if not exists warnings jsonb not null default '[]'::jsonb,
  add column if not exists singer_similarity double precision,
  add column if not exists other_singer boolean;

-- Speaker embeddings (Resemblyzer, 256 numbers) per ready file. Kept out of dataset_files so
-- they never travel in API bodies or Realtime payloads; nobody but the service reads them.
create table if not exists public.dataset_file_embeddings (
  file_id uuid primary key references public.dataset_files (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  embedding real[] not null check (cardinality(embedding) between 16 and 4096),
  created_at timestamptz not null default now()
);
create index if not exists dataset_file_embeddings_profile_idx
  on public.dataset_file_embeddings (profile_id);
alter table public.dataset_file_embeddings enable row level security;
revoke all on table public.dataset_file_embeddings from anon, authenticated;

-- The probe's verdict. Only a pending file takes one, so a duplicated event cannot probe a
-- file twice; the profile lock keeps the dataset total exact under concurrent probes.
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
  if v_code is null then
    select coalesce(sum(duration_sec), 0) into v_ready from public.dataset_files
     where profile_id = v_file.profile_id and status = 'ready';
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
  return to_jsonb(v_file);
end $$;

-- The dataset as a whole: counts and minutes, plus duration-weighted voice activity and
-- noise, and the one-singer check (the mean similarity of each file to the others).
create or replace function svc_private.dataset_summary(p_profile_id uuid)
returns jsonb language sql stable as $$
  select jsonb_build_object(
    'ready_files', count(*) filter (where status = 'ready'),
    'pending_files', count(*) filter (where status = 'pending'),
    'rejected_files', count(*) filter (where status = 'rejected'),
    'ready_seconds', coalesce(sum(duration_sec) filter (where status = 'ready'), 0),
    'voice_ratio', sum(voice_ratio * duration_sec) filter (where status = 'ready')
                   / nullif(sum(duration_sec) filter (where status = 'ready'
                                                      and voice_ratio is not null), 0),
    -- noise powers add up: the dataset's SNR is total vocal power over total noise power
    'snr_db', 10 * log(sum(duration_sec) filter (where status = 'ready' and snr_db is not null)
                       / nullif(sum(duration_sec * power(10, -snr_db / 10))
                                  filter (where status = 'ready' and snr_db is not null), 0)),
    'singer_consistency', avg(singer_similarity) filter (where status = 'ready'),
    'other_singer_files', count(*) filter (where status = 'ready' and other_singer))
  from public.dataset_files where profile_id = p_profile_id
$$;

-- Ready files of a profile that have no speaker embedding yet (the singer-check worker).
create or replace function public.singer_check_files(p_profile_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object('id', f.id, 'object_key', f.object_key)
                            order by f.created_at, f.id), '[]'::jsonb)
    from public.dataset_files f
   where f.profile_id = p_profile_id and f.status = 'ready'
     and not exists (select 1 from public.dataset_file_embeddings e where e.file_id = f.id)
$$;

-- Each ready file's cosine similarity to the centroid of the profile's other ready files;
-- with three or more, one under p_min_similarity is probably another singer.
create or replace function svc_private.refresh_singer_check(
  p_profile_id uuid, p_min_similarity double precision
) returns void language sql as $$
  with e as (
    select x.file_id, u.i, u.v::double precision as v
      from public.dataset_file_embeddings x
      join public.dataset_files f on f.id = x.file_id and f.status = 'ready'
     cross join lateral unnest(x.embedding) with ordinality as u(v, i)
     where x.profile_id = p_profile_id
  ), sums as (
    select i, sum(v) as s from e group by i
  ), n as (
    select count(distinct file_id) as c from e
  ), scores as (
    select e.file_id,
           sum(e.v * (sums.s - e.v))
             / nullif(sqrt(sum(e.v * e.v)) * sqrt(sum((sums.s - e.v) ^ 2)), 0) as similarity
      from e join sums using (i)
     group by e.file_id
  )
  update public.dataset_files f set
    singer_similarity = case when n.c >= 2 then s.similarity end,
    other_singer = case when n.c >= 3 then s.similarity < p_min_similarity end
    from scores s, n
   where f.id = s.file_id
$$;

-- A worker's speaker embedding (a JSON array) for one ready file, then the profile's check is recomputed
-- under the profile lock, so concurrent workers cannot leave a stale result behind.
create or replace function public.record_singer_embedding(
  p_file_id uuid, p_embedding jsonb, p_min_similarity double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_file public.dataset_files;
  v_embedding real[];
begin
  if jsonb_typeof(p_embedding) is distinct from 'array' then
    perform svc_private.raise_error('INVALID_REQUEST', 'An embedding is an array of numbers.',
                                    jsonb_build_object('file_id', p_file_id));
  end if;
  v_embedding := array(select x::real from jsonb_array_elements_text(p_embedding) as t(x));
  select * into v_file from public.dataset_files where id = p_file_id;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That dataset file does not exist.',
                                    jsonb_build_object('file_id', p_file_id));
  end if;
  perform 1 from public.voice_profiles where id = v_file.profile_id for update;
  if v_file.status = 'ready' then
    insert into public.dataset_file_embeddings (file_id, profile_id, embedding)
    values (p_file_id, v_file.profile_id, v_embedding)
    on conflict (file_id) do update set embedding = excluded.embedding;
  end if;
  perform svc_private.refresh_singer_check(v_file.profile_id, p_min_similarity);
  select * into v_file from public.dataset_files where id = p_file_id;
  return to_jsonb(v_file);
end $$;

select svc_private.restrict_to_service(array[
  'record_probe', 'singer_check_files', 'record_singer_embedding']);

-- The singer-check worker (gpu/singers.py) runs as the worker login.
select svc_private.grant_to_worker(array['singer_check_files', 'record_singer_embedding']);
