-- Retention and erasure. A voice is personal data: what is no longer needed leaves the bucket
-- and, for deleted profiles and erased accounts, the database too.
--
-- The database decides what goes; the scheduled task (pipeline/retention.py) only deletes the
-- object keys these functions queue in `object_deletions` and acknowledges them. Rows are
-- purged in the same transaction that queues their keys, so no key is ever lost track of.
-- Every statement is safe to run twice.

alter table public.dataset_files add column if not exists object_removed_at timestamptz;
alter table public.conversion_jobs add column if not exists files_removed_at timestamptz;

-- Keys waiting to be deleted from the bucket. No foreign keys: the queue outlives the rows
-- (and the account) the keys came from.
create table if not exists public.object_deletions (
  object_key text primary key,
  user_id uuid not null,
  reason text not null,
  enqueued_at timestamptz not null default now()
);
create index if not exists object_deletions_user_idx on public.object_deletions (user_id);
create index if not exists object_deletions_enqueued_idx on public.object_deletions (enqueued_at);
alter table public.object_deletions enable row level security;
revoke all on table public.object_deletions from anon, authenticated;

create or replace function svc_private.enqueue_deletions(
  p_user_id uuid, p_keys text[], p_reason text
) returns integer language sql as $$
  with ins as (
    insert into public.object_deletions (object_key, user_id, reason)
    select distinct k, p_user_id, p_reason from unnest(p_keys) k where k is not null
    on conflict (object_key) do nothing
    returning 1
  )
  select count(*)::integer from ins
$$;

-- Queues every object of the given profiles and deletes their rows (children first: model
-- versions are referenced by conversions, trainings by model versions, the profile by all).
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
      select unnest(array[model_key, config_key]) from public.model_versions
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

-- The scheduled rules, in one pass:
--   * rejected or deleted dataset files of a live profile: their object goes at once (the
--     row stays, so the person still sees why a file was refused);
--   * conversions: an abandoned one (canceled, which includes an expired upload ticket) loses
--     its objects at once, any other finished one after p_conversion_retention_sec;
--   * profiles deleted more than p_profile_grace_sec ago: every object and every row.
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
    returning c.user_id, c.input_key, c.output_key, c.status
  loop
    v_conversions := v_conversions + svc_private.enqueue_deletions(r.user_id,
      array[r.input_key, r.output_key],
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

-- `DELETE /me`: every profile (deleted ones in their grace period too), file, model and job
-- of one user, with every key queued. Live jobs are canceled first, with their refunds, so
-- the usage counters (kept, like quota overrides, until Supabase deletes the auth user)
-- stay true. Returns the counts and the worker call ids to signal.
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
  for r in
    select 'training' as kind, id from public.training_jobs
     where user_id = p_user_id and status in ('queued', 'running')
    union all
    select 'conversion', id from public.conversion_jobs
     where user_id = p_user_id and status in ('awaiting_upload', 'queued', 'running')
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
  select coalesce(array_agg(id), '{}') into v_profiles
    from public.voice_profiles where user_id = p_user_id;
  v_result := svc_private.purge_profiles(v_profiles, 'account_erased');
  return v_result || jsonb_build_object('jobs_canceled', v_canceled, 'call_ids', v_calls);
end $$;

-- The next keys to delete, oldest first; one user's only when p_user_id is given.
create or replace function public.list_object_deletions(p_limit integer, p_user_id uuid default null)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(d.object_key order by d.enqueued_at, d.object_key), '[]'::jsonb)
  from (select object_key, enqueued_at from public.object_deletions
         where p_user_id is null or user_id = p_user_id
         order by enqueued_at, object_key limit least(greatest(p_limit, 1), 10000)) d
$$;

-- Keys (a JSON array) whose objects are gone from the bucket.
create or replace function public.ack_object_deletions(p_keys jsonb)
returns jsonb language sql security definer set search_path = '' as $$
  with d as (delete from public.object_deletions
              where object_key in (select jsonb_array_elements_text(p_keys))
             returning 1)
  select jsonb_build_object('acked', count(*)) from d
$$;

-- Of the given keys (a JSON array of objects found in the bucket), those no row needs: a dataset object of a
-- row that is not pending or ready (or of no row at all, e.g. re-uploaded after a delete
-- through a still-valid link), a model or conversion object that no row names. A running
-- training's profile keeps its model prefix, since the worker uploads before it records.
create or replace function public.unclaimed_object_keys(p_keys jsonb)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(k order by k), '[]'::jsonb)
  from jsonb_array_elements_text(p_keys) k
  where not exists (select 1 from public.dataset_files f
                     where f.object_key = k and f.status in ('pending', 'ready'))
    and not exists (select 1 from public.model_versions m
                     where k in (m.model_key, m.config_key))
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

-- Bounded listings ---------------------------------------------------------------------

-- The dataset as it matters: every pending and ready file (bounded by the file cap), then
-- the most recent refusals, so a person still sees why a file was turned away.
drop function if exists public.list_dataset_files(uuid, uuid);
create or replace function public.list_dataset_files(
  p_user_id uuid, p_profile_id uuid, p_max_files integer default 100,
  p_rejected_limit integer default 20
) returns jsonb language plpgsql stable security definer set search_path = '' as $$
begin
  if not exists (select 1 from public.voice_profiles where id = p_profile_id
                   and user_id = p_user_id and deleted_at is null) then
    perform svc_private.raise_error('NOT_FOUND', 'That voice profile does not exist.',
                                    jsonb_build_object('profile_id', p_profile_id));
  end if;
  return (select coalesce(jsonb_agg(to_jsonb(f) order by f.created_at, f.id), '[]'::jsonb)
            from ((select * from public.dataset_files
                    where profile_id = p_profile_id and status in ('pending', 'ready')
                    order by created_at, id limit least(greatest(p_max_files, 1), 1000))
                  union all
                  (select * from public.dataset_files
                    where profile_id = p_profile_id and status = 'rejected'
                    order by created_at desc, id
                    limit least(greatest(p_rejected_limit, 0), 100))) f);
end $$;

-- Newest first, at most p_limit (1–200).
drop function if exists public.list_model_versions(uuid, uuid);
create or replace function public.list_model_versions(
  p_user_id uuid, p_profile_id uuid, p_limit integer default 50
) returns jsonb language plpgsql stable security definer set search_path = '' as $$
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
            from (select * from public.model_versions where profile_id = p_profile_id
                   order by created_at desc limit least(greatest(p_limit, 1), 200)) m);
end $$;

select svc_private.restrict_to_service(array[
  'apply_retention', 'erase_user_data', 'list_object_deletions', 'ack_object_deletions',
  'unclaimed_object_keys', 'list_dataset_files', 'list_model_versions']);
