-- The one-singer check: one worker per profile embeds each ready file's voice and scores how
-- alike the dataset's files are.

set check_function_bodies = off;

-- The singer check's functions take a profile that exists (deleted or not: a late request for
-- a deleted profile is harmless, its files are gone).
create or replace function svc_private.require_singer_profile(p_profile_id uuid)
returns void language plpgsql as $$
begin
  if not exists (select 1 from public.voice_profiles where id = p_profile_id) then
    perform svc_private.raise_error('NOT_FOUND', 'That voice profile does not exist.',
                                    jsonb_build_object('profile_id', p_profile_id));
  end if;
end $$;

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

-- Taken under the row lock, so of N concurrent requests for an idle profile exactly one is
-- told to spawn the worker; a request while one is pending is a no-op, one while it runs
-- marks it to run once more. Returns whether the caller must spawn.
create or replace function public.request_singer_check(
  p_profile_id uuid, p_stale_seconds double precision
) returns boolean language plpgsql security definer set search_path = '' as $$
declare
  v_check public.singer_checks;
  v_fresh timestamptz := now() - make_interval(secs => p_stale_seconds);
begin
  perform svc_private.require_singer_profile(p_profile_id);
  insert into public.singer_checks (profile_id) values (p_profile_id)
  on conflict (profile_id) do nothing;
  select * into v_check from public.singer_checks where profile_id = p_profile_id for update;
  if v_check.started_at is not null and v_check.started_at > v_fresh then
    update public.singer_checks set again = true where profile_id = p_profile_id;
    return false;
  end if;
  if v_check.requested_at is not null and v_check.requested_at > v_fresh then
    return false;
  end if;
  update public.singer_checks set requested_at = now(), started_at = null, again = false
   where profile_id = p_profile_id;
  return true;
end $$;

-- The worker starts: what was asked for so far is now its job.
create or replace function public.begin_singer_check(p_profile_id uuid)
returns void language plpgsql security definer set search_path = '' as $$
begin
  perform svc_private.require_singer_profile(p_profile_id);
  insert into public.singer_checks (profile_id, started_at) values (p_profile_id, now())
  on conflict (profile_id) do update set requested_at = null, started_at = now(), again = false;
end $$;

-- Ready files of a profile that have no speaker embedding yet (the singer-check worker).
-- A mix is not one singer's voice: never embedded.
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

-- A worker's speaker embedding (a JSON array) for one ready file, then the profile's check is
-- recomputed under the profile lock, so concurrent workers cannot leave a stale result behind.
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

-- The worker ends a pass: true when it was asked for again meanwhile (it runs once more, now
-- counted as running afresh); false when it is done, or with p_failed when it gave up, so the
-- next request spawns a new worker.
create or replace function public.finish_singer_check(p_profile_id uuid, p_failed boolean)
returns boolean language plpgsql security definer set search_path = '' as $$
declare
  v_again boolean;
begin
  perform svc_private.require_singer_profile(p_profile_id);
  update public.singer_checks set
    started_at = case when again and not coalesce(p_failed, false) then now() end,
    again = false
   where profile_id = p_profile_id
  returning started_at is not null into v_again;
  return coalesce(v_again, false);
end $$;
