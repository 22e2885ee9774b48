-- One singer-check worker per profile, not one per ready file, and similarities that follow
-- the current set of files when one is deleted.

-- The profile's singer check: asked for (a worker was spawned and has not started yet),
-- running (since when), and asked for again while running (the worker runs once more at
-- its end instead of a second worker being spawned). A stamp older than the caller's stale
-- limit belongs to a worker that died: the next request spawns a fresh one.
create table if not exists public.singer_checks (
  profile_id uuid primary key references public.voice_profiles (id) on delete cascade,
  requested_at timestamptz,
  started_at timestamptz,
  again boolean not null default false
);
alter table public.singer_checks enable row level security;
revoke all on table public.singer_checks from anon, authenticated;

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

-- Copied from 20261121000003_functions.sql; now also refreshes the profile's singer check
-- (under the profile lock, as record_singer_embedding does), so the remaining files'
-- similarities and the dataset's consistency describe the files that are left.
drop function if exists public.delete_dataset_file(uuid, uuid, uuid);
create or replace function public.delete_dataset_file(
  p_user_id uuid, p_profile_id uuid, p_file_id uuid, p_min_similarity double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_file public.dataset_files;
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
  perform svc_private.refresh_singer_check(p_profile_id, p_min_similarity);
  return to_jsonb(v_file);
end $$;

-- Copied from 20261121000004_events.sql; an object deleted from the bucket (its row, if still
-- live, becomes deleted) now also refreshes its profile's singer check.
drop function if exists public.mark_object_deleted(text);
create or replace function public.mark_object_deleted(
  p_object_key text, p_min_similarity double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile_id uuid;
  v_count integer := 0;
begin
  select profile_id into v_profile_id from public.dataset_files
   where object_key = p_object_key and status <> 'deleted' limit 1;
  if v_profile_id is not null then
    perform 1 from public.voice_profiles where id = v_profile_id for update;
    with d as (
      update public.dataset_files set status = 'deleted'
       where object_key = p_object_key and status <> 'deleted'
      returning id
    )
    select count(*) into v_count from d;
    perform svc_private.refresh_singer_check(v_profile_id, p_min_similarity);
  end if;
  return jsonb_build_object('deleted', v_count);
end $$;

select svc_private.restrict_to_service(array[
  'request_singer_check', 'begin_singer_check', 'finish_singer_check', 'delete_dataset_file',
  'mark_object_deleted']);

-- The probe asks for the check; the singer-check worker (gpu/singers.py) begins and ends it.
select svc_private.grant_to_worker(array[
  'request_singer_check', 'begin_singer_check', 'finish_singer_check']);
