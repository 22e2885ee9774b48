-- Retention and erasure. A voice is personal data: what is no longer needed leaves the bucket
-- and, for deleted profiles and erased accounts, the database too.
--
-- The database decides what goes; the scheduled task (pipeline/retention.py) only deletes the
-- object keys these functions queue in `object_deletions` and acknowledges them. Rows are
-- purged in the same transaction that queues their keys, so no key is ever lost track of.

set check_function_bodies = off;

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
-- A model version's preview (beside its weights) and a song conversion's parts are queued too.
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

-- The scheduled rules, in one pass:
--   * rejected or deleted dataset files of a live profile: their object goes at once (the
--     row stays, so the person still sees why a file was refused);
--   * conversions: an abandoned one (canceled, which includes an expired upload ticket) loses
--     its objects at once, any other finished one after p_conversion_retention_sec;
--   * profiles deleted more than p_profile_grace_sec ago: every object and every row.
-- A song conversion's parts are queued with its input and output.
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

-- Instant conversions (67_instant.sql) lose their input, output and a song's parts like a
-- conversion (a canceled one at once, any other after p_retention_sec); the row stays, saying
-- so. A voice's reference stays while the voice does (the person keeps it to convert and speak
-- with; its delete trigger queues the reference); only a voice that never became usable
-- (rejected, or never uploaded) goes once older than p_retention_sec.
create or replace function public.expire_instant_jobs(p_retention_sec integer)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_objects integer := 0;
  v_voices integer := 0;
  r record;
begin
  for r in
    update public.instant_jobs j set files_removed_at = now()
     where j.files_removed_at is null and svc_private.is_terminal(j.status)
       and (j.status = 'canceled'
            or coalesce(j.finished_at, j.created_at)
               < now() - make_interval(secs => p_retention_sec))
    returning j.user_id, j.status,
              array[j.input_key, j.output_key] || svc_private.instant_part_keys(j) as keys
  loop
    v_objects := v_objects + svc_private.enqueue_deletions(r.user_id, r.keys,
      case when r.status = 'canceled' then 'instant_abandoned' else 'instant_expired' end);
  end loop;
  -- the delete trigger queues each reference's key
  with gone as (
    delete from public.instant_voices v
     where (v.status = 'rejected'
            and v.created_at < now() - make_interval(secs => p_retention_sec))
        or (v.status = 'awaiting_upload'
            and coalesce(v.upload_expires_at, v.created_at)
                < now() - make_interval(secs => p_retention_sec))
    returning 1
  )
  select count(*) into v_voices from gone;
  return jsonb_build_object('objects_queued', v_objects, 'voices_deleted', v_voices);
end $$;

-- `DELETE /me`: every profile (deleted ones in their grace period too), file, model and job of
-- one user, with every key queued. Live jobs are canceled first, with their refunds, so the
-- usage counters (kept, like quota overrides, until Supabase deletes the auth user) stay true.
-- Returns the counts and the worker call ids to signal. Live jobs of every kind are canceled.
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
  select coalesce(array_agg(id order by id), '{}') into v_profiles
    from (select id from public.voice_profiles where user_id = p_user_id order by id for update) p;
  perform svc_private.lock_live_jobs(p_user_id, null);
  for r in
    select kind, id from svc_private.jobs
     where user_id = p_user_id and status in ('awaiting_upload', 'queued', 'running')
     order by kind, id
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

-- Of the given keys (a JSON array of objects found in the bucket), those no row needs: a dataset
-- object of a row that is not pending or ready (or of no row at all, e.g. re-uploaded after a
-- delete through a still-valid link), a model or conversion object that no row names. A running
-- training's profile keeps its model prefix, since the worker uploads before it records. A model
-- version claims its whole prefix (weights, config, preview) and a live song conversion its
-- parts (the worker uploads them a moment before it records the job's output).
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

-- Erasure leaves nothing naming the person (issue 23): `erase_user_data` removes their rows
-- and queues their objects as before; once the objects are gone, `delete_account` (the last
-- step of DELETE /me) removes what still names them outside their own rows — rate buckets are
-- keyed by the user id, the deletion queue and operator actions on the account are logged
-- under it (the dedupe table and the event log hold only hashes and `kind:row id`, never a
-- user id) — and then the account
-- itself, whose cascade takes usage counters, overrides, grants, the GPU spend and a
-- disabled-account record. It runs last so that an erasure interrupted by a storage outage
-- can be finished by the person's retry (the account still signs in until then).
create or replace function public.delete_account(p_user_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_deleted integer;
begin
  if exists (select 1 from public.voice_profiles where user_id = p_user_id) then
    perform svc_private.raise_error('INVALID_TRANSITION',
      'The account still has data; erase it first.', jsonb_build_object('user_id', p_user_id));
  end if;
  delete from public.rate_buckets where subject = 'user:' || p_user_id::text;
  delete from public.object_deletions where user_id = p_user_id;
  delete from ops.audit_log where target_kind = 'user' and target_id = p_user_id;
  delete from auth.users where id = p_user_id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('account_deleted', v_deleted > 0);
end $$;
