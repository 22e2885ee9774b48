-- Separations: a ready full mix's vocal, written by a worker as a new dataset file derived
-- from the mix (quota-free, charged to the GPU budget).

set check_function_bodies = off;

-- A separation queued again while its song is still in the dataset: a vocal the failed
-- attempt registered was deleted with it, so the next attempt writes a new one.
create or replace function svc_private.separation_requeued(p_job jsonb)
returns void language plpgsql as $$
begin
  if not exists (select 1 from public.dataset_files
                  where id = (p_job ->> 'source_file_id')::uuid and status = 'ready') then
    perform svc_private.raise_error('INVALID_TRANSITION', 'That separation''s song is gone.',
      jsonb_build_object('kind', 'separation', 'id', p_job -> 'id'));
  end if;
  update public.separation_jobs set derived_file_id = gen_random_uuid()
   where id = (p_job ->> 'id')::uuid;
end $$;

-- The job kind: no counted quota, charged to the GPU budget; a queued separation waits in line
-- for one of its person's VC_MAX_ACTIVE_SEPARATIONS slots (take_separation hands it out), and a
-- requeued or retried one gets a fresh id for its vocal (separation_requeued).
select svc_private.declare_job_kind('separation', 'public.separation_jobs',
  p_active_limit => 'in_line', p_on_requeue => 'svc_private.separation_requeued');

-- A separation that ends without succeeding leaves no derived file behind: a vocal row the
-- worker registered before its upload is deleted with it (retention removes the object).
create or replace function svc_private.drop_unfinished_vocal() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  update public.dataset_files set status = 'deleted'
   where id = new.derived_file_id and status = 'pending';
  return null;
end $$;
create trigger separation_jobs_drop_unfinished_vocal
  after update of status on public.separation_jobs
  for each row when (new.status in ('failed', 'canceled') and old.status <> new.status)
  execute function svc_private.drop_unfinished_vocal();

-- The probe's follow-up on a ready mix (and the cron's, for one waiting in line): hands its
-- queued separation out for launching exactly once, while its person has a free slot
-- (VC_MAX_ACTIVE_SEPARATIONS), or fails it when the GPU budget is spent, as a training would
-- be refused (svc_private.hand_out). Returns {"taken": bool, "job": row or null}.
create or replace function public.take_separation(
  p_max_active integer, p_file_id uuid
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_id uuid;
begin
  select id into v_id from public.separation_jobs where source_file_id = p_file_id;
  if v_id is null then
    return jsonb_build_object('taken', false, 'job', null);
  end if;
  return svc_private.hand_out('separation', v_id, p_max_active,
    'This month''s %s minutes of GPU time are used up, so the song was not separated. '
    'Try again after %s UTC.');
end $$;

-- The mix a separation job reads, by job alone (what the worker login may read).
create or replace function public.separation_source(p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_file jsonb;
begin
  select to_jsonb(f) into v_file
    from public.separation_jobs j join public.dataset_files f on f.id = j.source_file_id
   where j.id = p_job_id;
  if v_file is null then
    perform svc_private.raise_error('NOT_FOUND', 'That dataset file does not exist.',
                                    jsonb_build_object('job_id', p_job_id));
  end if;
  return v_file;
end $$;

-- The separation worker, before it uploads the vocal: registers it as a pending dataset
-- file (derived from the mix) under the job's fixed id, so the upload's own event probes it
-- like any upload. A repeat returns the same row; a job that is no longer running, or whose
-- mix was deleted meanwhile, registers nothing (null).
create or replace function public.register_separated_vocal(
  p_job_id uuid, p_object_key text, p_filename text, p_size_bytes bigint
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb;
  v_source public.dataset_files;
  v_file public.dataset_files;
begin
  perform 1 from public.voice_profiles
   where id = (select profile_id from public.separation_jobs where id = p_job_id) for update;
  v_job := svc_private.lock_job('separation', p_job_id);
  if v_job ->> 'status' <> 'running' then
    return null;
  end if;
  select * into v_source from public.dataset_files
   where id = (v_job ->> 'source_file_id')::uuid;
  if v_source.status <> 'ready' then
    perform svc_private.end_job('separation', v_job, 'canceled', 'CANCELED',
                                'Canceled because its song was deleted.');
    return null;
  end if;
  if p_object_key not like format('vc/users/%s/profiles/%s/dataset/%s/%%', v_job ->> 'user_id',
                                  v_job ->> 'profile_id', v_job ->> 'derived_file_id') then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The object key does not match the job.',
                                    jsonb_build_object('object_key', p_object_key));
  end if;
  insert into public.dataset_files
    (id, profile_id, user_id, object_key, filename, content_type, size_bytes, derived_from)
  values ((v_job ->> 'derived_file_id')::uuid, v_source.profile_id, v_source.user_id,
          p_object_key, p_filename, 'audio/wav', p_size_bytes, v_source.id)
  on conflict (id) do nothing;
  select * into v_file from public.dataset_files where id = (v_job ->> 'derived_file_id')::uuid;
  return to_jsonb(v_file);
end $$;

create or replace function public.finish_separation(p_job_id uuid, p_attempt integer default null)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.finishing_job('separation', p_job_id, p_attempt);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if not exists (select 1 from public.dataset_files
                  where id = (v_job ->> 'derived_file_id')::uuid and status <> 'deleted') then
    perform svc_private.raise_error('INVALID_TRANSITION', 'The separated vocal was not registered.',
                                    jsonb_build_object('id', p_job_id));
  end if;
  return svc_private.succeed_job('separation', v_job, '{"percent": 100}');
end $$;

-- The person's "try again" on a failed or canceled separation: queued anew (taken and
-- launched like the first time), with a fresh id for its vocal, while the song is still
-- ready and the GPU budget is not spent. A job still queued or running is returned as it is.
create or replace function public.retry_separation(
  p_user_id uuid, p_job_id uuid, p_gpu_seconds_per_month integer default null,
  p_max_active integer default 2
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb;
begin
  perform 1 from public.voice_profiles
   where id = (select profile_id from public.separation_jobs
                where id = p_job_id and user_id = p_user_id) for update;
  v_job := svc_private.lock_job('separation', p_job_id);
  if v_job ->> 'user_id' <> p_user_id::text then
    perform svc_private.raise_error('NOT_FOUND', 'That job does not exist.',
                                    jsonb_build_object('kind', 'separation', 'id', p_job_id));
  end if;
  if v_job ->> 'status' in ('queued', 'running') then
    return v_job;
  end if;
  perform svc_private.owned_profile(p_user_id, (v_job ->> 'profile_id')::uuid);
  if not exists (select 1 from public.dataset_files
                  where id = (v_job ->> 'source_file_id')::uuid and status = 'ready') then
    perform svc_private.raise_error('NOT_READY', 'That song is no longer in the dataset.',
                                    jsonb_build_object('id', p_job_id));
  end if;
  perform svc_private.clear_separation_vocal(v_job);
  perform svc_private.require_gpu_budget(p_user_id, p_gpu_seconds_per_month);
  perform svc_private.slot_lock('separation', p_user_id);
  if svc_private.active_jobs('separation', p_user_id, p_job_id) >= greatest(p_max_active, 1) then
    perform svc_private.raise_error('SEPARATION_IN_PROGRESS',
      format('%s of your songs are being separated; try again when one has finished.',
             greatest(p_max_active, 1)),
      jsonb_build_object('max_active', greatest(p_max_active, 1)));
  end if;
  return svc_private.requeue('separation', v_job, jsonb_build_object(
    'started_at', null, 'worker_call_id', null, 'progress', jsonb_build_object('phase', 'queued')));
end $$;


-- The mixes whose separations wait in line (queued, never handed out) for a minute or more,
-- oldest first: the cron offers each to `take_separation`, which launches those with a slot.
-- A minute's grace leaves a fresh one to the probe that queued it.
create or replace function public.waiting_separations(p_limit integer default 50)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(source_file_id order by queued_at), '[]'::jsonb)
    from (select source_file_id, queued_at from public.separation_jobs
           where status = 'queued' and worker_call_id is null
             and queued_at < now() - interval '1 minute'
           order by queued_at limit least(greatest(p_limit, 1), 500)) w
$$;

-- A retry meets the song's earlier vocal: one the probe rejected is dropped and the song is
-- separated again (also after a success: the person asked for another try); one that is in
-- the dataset refuses the retry up front (409), where it used to run a whole charged Demucs
-- pass and then fail INTERNAL on the one-live-vocal index.
create or replace function svc_private.clear_separation_vocal(p_job jsonb)
returns void language plpgsql as $$
declare
  v_vocal public.dataset_files;
begin
  select * into v_vocal from public.dataset_files
   where derived_from = (p_job ->> 'source_file_id')::uuid and status <> 'deleted'
   for update;
  if not found then
    return;
  end if;
  if v_vocal.status <> 'rejected' then
    perform svc_private.raise_error('INVALID_TRANSITION',
      'This song''s vocal is already in the dataset. Delete it to separate the song again.',
      jsonb_build_object('kind', 'separation', 'id', p_job -> 'id',
                         'vocal_file_id', v_vocal.id));
  end if;
  update public.dataset_files set status = 'deleted' where id = v_vocal.id;
end $$;
