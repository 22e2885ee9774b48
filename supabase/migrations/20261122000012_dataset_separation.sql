-- Datasets from full mixes: an upload may be marked as a whole song ("full mix"). The probe
-- checks it as any upload; once it is ready, a separation job (a third job kind, on the same
-- claim / heartbeat / fail / cancel / reaper machinery, quota-free but charged to the GPU
-- budget) writes its vocal as a new dataset file `derived_from` the mix, which is probed like
-- any upload and trains. The mix itself never trains and never counts toward the dataset's
-- minutes. Safe to run twice.

alter table public.dataset_files
  add column if not exists full_mix boolean not null default false,
  add column if not exists derived_from uuid references public.dataset_files (id)
    on delete cascade;
-- One live vocal per mix; a retried separation writes a new one beside the deleted old one.
create unique index if not exists dataset_files_derived_from_live_key
  on public.dataset_files (derived_from) where derived_from is not null and status <> 'deleted';
do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'dataset_files_derived_not_mix') then
    alter table public.dataset_files add constraint dataset_files_derived_not_mix
      check (not (full_mix and derived_from is not null));
  end if;
end $$;

-- One separation per mix (the unique source makes its creation idempotent). The vocal's
-- dataset file id is fixed when the job is created, so a retried worker writes one key.
create table if not exists public.separation_jobs (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  source_file_id uuid not null unique references public.dataset_files (id) on delete cascade,
  derived_file_id uuid not null default gen_random_uuid(),
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  progress jsonb not null default '{}'::jsonb,
  worker_call_id text,
  attempt integer not null default 0 check (attempt >= 0),
  heartbeat_at timestamptz,
  error_code text,
  error_message text,
  -- Separation takes no counted quota; `free` keeps the shared helpers' refund logic a no-op.
  quota_state text not null default 'free' check (quota_state = 'free'),
  gpu_seconds double precision not null default 0,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz
);
create index if not exists separation_jobs_user_idx
  on public.separation_jobs (user_id, created_at desc);
create index if not exists separation_jobs_profile_idx
  on public.separation_jobs (profile_id, created_at desc);
create index if not exists separation_jobs_active_idx
  on public.separation_jobs (status, heartbeat_at) where status in ('queued', 'running');

alter table public.separation_jobs enable row level security;
drop policy if exists separation_jobs_owner_select on public.separation_jobs;
create policy separation_jobs_owner_select on public.separation_jobs
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.separation_jobs from anon, authenticated;
grant select on table public.separation_jobs to authenticated;

do $$
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime')
     and not exists (select 1 from pg_publication_tables where pubname = 'supabase_realtime'
                       and schemaname = 'public' and tablename = 'separation_jobs') then
    alter publication supabase_realtime add table public.separation_jobs;
  end if;
end $$;

-- Operators may fail a stuck separation like any job (ops.fail_job audits it).
alter table ops.audit_log drop constraint if exists audit_log_target_kind_check;
alter table ops.audit_log add constraint audit_log_target_kind_check
  check (target_kind in ('user', 'profile', 'training', 'conversion', 'separation'));

-- Was: 20261121000002_helpers.sql. Now knows the third kind.
create or replace function svc_private.job_table(p_kind text)
returns text language plpgsql immutable as $$
begin
  if p_kind = 'training' then return 'training_jobs'; end if;
  if p_kind = 'conversion' then return 'conversion_jobs'; end if;
  if p_kind = 'separation' then return 'separation_jobs'; end if;
  perform svc_private.raise_error('INVALID_ARGUMENT', 'Unknown job kind.',
                                  jsonb_build_object('kind', p_kind));
end $$;

-- A separation that ends without succeeding leaves no derived file behind: a vocal row the
-- worker registered before its upload is deleted with it (retention removes the object).
create or replace function svc_private.drop_unfinished_vocal() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  update public.dataset_files set status = 'deleted'
   where id = new.derived_file_id and status = 'pending';
  return null;
end $$;
drop trigger if exists separation_jobs_drop_unfinished_vocal on public.separation_jobs;
create trigger separation_jobs_drop_unfinished_vocal
  after update of status on public.separation_jobs
  for each row when (new.status in ('failed', 'canceled') and old.status <> new.status)
  execute function svc_private.drop_unfinished_vocal();

-- Profiles -------------------------------------------------------------------------------

-- Was: 20261121000003_functions.sql. A separation in flight does not hold the profile: it is
-- canceled with it (its worker stops at its next heartbeat), as deleting its song would.
create or replace function public.delete_profile(p_user_id uuid, p_profile_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles := svc_private.owned_profile(p_user_id, p_profile_id);
  r record;
begin
  if exists (select 1 from public.training_jobs where profile_id = p_profile_id
               and status in ('queued', 'running'))
     or exists (select 1 from public.conversion_jobs where profile_id = p_profile_id
                  and status in ('awaiting_upload', 'queued', 'running')) then
    perform svc_private.raise_error('PROFILE_BUSY',
      'This profile has a training or conversion in progress. Cancel it first.',
      jsonb_build_object('profile_id', p_profile_id));
  end if;
  for r in select id from public.separation_jobs
            where profile_id = p_profile_id and status in ('queued', 'running') loop
    perform svc_private.end_job('separation', svc_private.lock_job('separation', r.id),
                                'canceled', 'CANCELED', 'Canceled because its voice was deleted.');
  end loop;
  update public.dataset_files set status = 'deleted'
   where profile_id = p_profile_id and status <> 'deleted';
  update public.voice_profiles set deleted_at = now(), status = 'disabled', updated_at = now()
   where id = p_profile_id returning * into v_profile;
  return svc_private.profile_json(v_profile);
end $$;

-- Dataset -------------------------------------------------------------------------------

-- Was: 20261121000003_functions.sql. Now records whether the upload is a full mix.
drop function if exists public.register_upload(uuid, uuid, uuid, text, text, text, bigint, integer);
create or replace function public.register_upload(
  p_user_id uuid, p_profile_id uuid, p_file_id uuid, p_object_key text, p_filename text,
  p_content_type text, p_size_bytes bigint, p_max_files integer, p_full_mix boolean default false
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_file public.dataset_files;
begin
  perform svc_private.owned_profile(p_user_id, p_profile_id);
  if p_object_key not like format('vc/users/%s/profiles/%s/dataset/%s/%%',
                                  p_user_id, p_profile_id, p_file_id) then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The object key does not match its owner.',
                                    jsonb_build_object('object_key', p_object_key));
  end if;
  if (select count(*) from public.dataset_files
       where profile_id = p_profile_id and status in ('pending', 'ready')) >= p_max_files then
    perform svc_private.raise_error('TOO_MANY_FILES',
      format('A profile holds at most %s dataset files. Delete some first.', p_max_files),
      jsonb_build_object('max_files', p_max_files));
  end if;
  insert into public.dataset_files
    (id, profile_id, user_id, object_key, filename, content_type, size_bytes, full_mix)
  values (p_file_id, p_profile_id, p_user_id, p_object_key, p_filename, p_content_type,
          p_size_bytes, coalesce(p_full_mix, false))
  returning * into v_file;
  return to_jsonb(v_file);
end $$;

-- Was: 20261122000002_dataset_analysis.sql. A full mix does not count toward the dataset's
-- minutes (it never trains), and a ready one gets its separation job, once: only a pending
-- file takes a verdict, and the job's source is unique.
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
  if v_code is null and not v_file.full_mix then
    select coalesce(sum(duration_sec), 0) into v_ready from public.dataset_files
     where profile_id = v_file.profile_id and status = 'ready' and not full_mix;
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
  if v_file.status = 'ready' and v_file.full_mix then
    insert into public.separation_jobs (user_id, profile_id, source_file_id, progress)
    values (v_file.user_id, v_file.profile_id, v_file.id, jsonb_build_object('phase', 'queued'))
    on conflict (source_file_id) do nothing;
  end if;
  return to_jsonb(v_file);
end $$;

-- Was: 20261122000002_dataset_analysis.sql. Full mixes are counted apart: what trains (and
-- every dataset figure) is the rest, the separated vocals included.
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
    'other_singer_files', count(*) filter (where status = 'ready' and other_singer),
    'full_mix_files', (select count(*) from public.dataset_files m
                        where m.profile_id = p_profile_id and m.full_mix
                          and m.status in ('pending', 'ready')))
  from public.dataset_files where profile_id = p_profile_id and not full_mix
$$;

-- Was: 20261122000002_dataset_analysis.sql. A mix is not one singer's voice: never embedded.
create or replace function public.singer_check_files(p_profile_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object('id', f.id, 'object_key', f.object_key)
                            order by f.created_at, f.id), '[]'::jsonb)
    from public.dataset_files f
   where f.profile_id = p_profile_id and f.status = 'ready' and not f.full_mix
     and not exists (select 1 from public.dataset_file_embeddings e where e.file_id = f.id)
$$;

-- Was: 20261122000003_spend_and_abuse.sql. A full mix never trains; its vocal does.
create or replace function public.training_inputs(p_job_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', f.id, 'object_key', f.object_key, 'duration_sec', f.duration_sec,
           'etag', f.etag, 'size_bytes', f.size_bytes, 'sample_rate', f.sample_rate,
           'channels', f.channels)
         order by f.created_at, f.id), '[]'::jsonb)
  from public.training_jobs j
  join public.dataset_files f on f.profile_id = j.profile_id and f.status = 'ready'
                             and not f.full_mix
  where j.id = p_job_id
$$;

-- Was: 20261122000008_singer_jobs.sql. Deleting a mix deletes its separated vocal too and
-- cancels a separation still in flight (its worker stops at its next heartbeat).
create or replace function public.delete_dataset_file(
  p_user_id uuid, p_profile_id uuid, p_file_id uuid, p_min_similarity double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_file public.dataset_files;
  v_job jsonb;
  v_job_id uuid;
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
  if v_file.full_mix then
    select id into v_job_id from public.separation_jobs where source_file_id = p_file_id;
    if v_job_id is not null then
      v_job := svc_private.lock_job('separation', v_job_id);
      if not svc_private.is_terminal(v_job ->> 'status') then
        perform svc_private.end_job('separation', v_job, 'canceled', 'CANCELED',
                                    'Canceled because its song was deleted.');
      end if;
    end if;
    update public.dataset_files set status = 'deleted'
     where derived_from = p_file_id and status <> 'deleted';
  end if;
  perform svc_private.refresh_singer_check(p_profile_id, p_min_similarity);
  return to_jsonb(v_file);
end $$;

-- Training -------------------------------------------------------------------------------

-- Was: 20261122000003_spend_and_abuse.sql. The ready minutes leave full mixes out.
create or replace function public.start_training(
  p_user_id uuid, p_profile_id uuid, p_params jsonb, p_min_seconds double precision,
  p_max_seconds double precision, p_default_limit integer, p_max_active integer default 1,
  p_gpu_seconds_per_month integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_ready double precision;
  v_period date;
  v_job public.training_jobs;
begin
  perform svc_private.owned_profile(p_user_id, p_profile_id);
  select coalesce(sum(duration_sec), 0) into v_ready from public.dataset_files
   where profile_id = p_profile_id and status = 'ready' and not full_mix;
  if v_ready < p_min_seconds then
    perform svc_private.raise_error('DATASET_TOO_SHORT',
      format('Training needs at least %s minutes of usable audio; this profile has %s.',
             round((p_min_seconds / 60)::numeric, 1), round((v_ready / 60)::numeric, 1)),
      jsonb_build_object('ready_seconds', v_ready, 'min_seconds', p_min_seconds));
  end if;
  if v_ready > p_max_seconds then
    perform svc_private.raise_error('DATASET_TOO_LONG',
      format('Training takes at most %s minutes of audio; this profile has %s. Delete some files.',
             round((p_max_seconds / 60)::numeric, 1), round((v_ready / 60)::numeric, 1)),
      jsonb_build_object('ready_seconds', v_ready, 'max_seconds', p_max_seconds));
  end if;
  perform svc_private.require_gpu_budget(p_user_id, p_gpu_seconds_per_month);
  v_period := svc_private.reserve_quota(p_user_id, 'training', p_default_limit);
  -- The counter row is locked until commit, so this count cannot race another start.
  if (select count(*) from public.training_jobs
       where user_id = p_user_id and status in ('queued', 'running')) >= p_max_active then
    perform svc_private.raise_error('TRAINING_IN_PROGRESS',
      'A training is already running for your account. Wait for it or cancel it.',
      jsonb_build_object('max_active', p_max_active));
  end if;
  insert into public.training_jobs (user_id, profile_id, params, progress, quota_period_start)
  values (p_user_id, p_profile_id, coalesce(p_params, '{}'::jsonb),
          jsonb_build_object('phase', 'queued'), v_period)
  returning * into v_job;
  return to_jsonb(v_job);
end $$;

-- Separation ----------------------------------------------------------------------------

-- The probe's follow-up on a ready mix: hands its queued separation out for launching exactly
-- once (a repeated probe delivery finds it taken). A user whose GPU budget is spent gets the
-- job failed with GPU_BUDGET_EXHAUSTED instead, as a training would be refused. Returns
-- {"taken": bool, "job": row or null}.
create or replace function public.take_separation(
  p_file_id uuid, p_gpu_seconds_per_month integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_id uuid;
  v_job jsonb;
  v_usage jsonb;
begin
  select id into v_id from public.separation_jobs where source_file_id = p_file_id;
  if v_id is null then
    return jsonb_build_object('taken', false, 'job', null);
  end if;
  v_job := svc_private.lock_job('separation', v_id);
  if v_job ->> 'status' <> 'queued' or v_job ->> 'worker_call_id' is not null then
    return jsonb_build_object('taken', false, 'job', v_job);
  end if;
  v_usage := svc_private.gpu_usage((v_job ->> 'user_id')::uuid, p_gpu_seconds_per_month);
  if v_usage ->> 'limit_seconds' is not null
     and (v_usage ->> 'remaining_seconds')::double precision <= 0 then
    v_job := svc_private.end_job('separation', v_job, 'failed', 'GPU_BUDGET_EXHAUSTED',
      format('This month''s %s minutes of GPU time are used up, so the song was not separated. '
             'Try again after %s UTC.',
             round((v_usage ->> 'limit_seconds')::numeric / 60, 1),
             to_char((v_usage ->> 'resets_at')::timestamptz at time zone 'UTC',
                     'YYYY-MM-DD HH24:MI')));
    return jsonb_build_object('taken', false, 'job', v_job);
  end if;
  v_job := svc_private.update_job('separation', v_job,
                                  jsonb_build_object('worker_call_id', 'dispatching'));
  return jsonb_build_object('taken', true, 'job', v_job);
end $$;

-- The separation worker, before it uploads the vocal: registers it as a pending dataset
-- file (derived from the mix) under the job's fixed id, so the upload's own event probes it
-- like any upload. A repeat returns the same row; a job that is no longer running, or whose
-- mix was deleted meanwhile, registers nothing (null).
create or replace function public.register_separated_vocal(
  p_job_id uuid, p_object_key text, p_filename text, p_size_bytes bigint
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job('separation', p_job_id);
  v_source public.dataset_files;
  v_file public.dataset_files;
begin
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

create or replace function public.finish_separation(p_job_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job('separation', p_job_id);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if v_job ->> 'status' <> 'running' then
    perform svc_private.invalid_transition('separation', v_job, 'succeeded');
  end if;
  if not exists (select 1 from public.dataset_files
                  where id = (v_job ->> 'derived_file_id')::uuid and status <> 'deleted') then
    perform svc_private.raise_error('INVALID_TRANSITION', 'The separated vocal was not registered.',
                                    jsonb_build_object('id', p_job_id));
  end if;
  perform svc_private.charge_gpu('separation', v_job);
  return svc_private.update_job('separation', v_job, jsonb_build_object(
    'status', 'succeeded', 'finished_at', now(),
    'progress', v_job -> 'progress' || jsonb_build_object('phase', 'succeeded', 'percent', 100)));
end $$;

-- The person's "try again" on a failed or canceled separation: queued anew (taken and
-- launched like the first time), with a fresh id for its vocal, while the song is still
-- ready and the GPU budget is not spent. A job still queued or running is returned as it is.
create or replace function public.retry_separation(
  p_user_id uuid, p_job_id uuid, p_gpu_seconds_per_month integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job('separation', p_job_id);
begin
  if v_job ->> 'user_id' <> p_user_id::text then
    perform svc_private.raise_error('NOT_FOUND', 'That job does not exist.',
                                    jsonb_build_object('kind', 'separation', 'id', p_job_id));
  end if;
  if v_job ->> 'status' in ('queued', 'running') then
    return v_job;
  end if;
  if v_job ->> 'status' = 'succeeded' then
    perform svc_private.invalid_transition('separation', v_job, 'queued');
  end if;
  perform svc_private.owned_profile(p_user_id, (v_job ->> 'profile_id')::uuid);
  if not exists (select 1 from public.dataset_files
                  where id = (v_job ->> 'source_file_id')::uuid and status = 'ready') then
    perform svc_private.raise_error('NOT_READY', 'That song is no longer in the dataset.',
                                    jsonb_build_object('id', p_job_id));
  end if;
  perform svc_private.require_gpu_budget(p_user_id, p_gpu_seconds_per_month);
  update public.separation_jobs set derived_file_id = gen_random_uuid() where id = p_job_id;
  return svc_private.update_job('separation', v_job, jsonb_build_object(
    'status', 'queued', 'error_code', null, 'error_message', null, 'finished_at', null,
    'started_at', null, 'heartbeat_at', null, 'worker_call_id', null,
    'progress', jsonb_build_object('phase', 'queued')));
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

-- Maintenance ---------------------------------------------------------------------------

-- Was: 20261121000003_functions.sql. Now reaps separations too (no quota to refund: their
-- message says how to try again instead).
create or replace function public.reap_stale_jobs(
  p_heartbeat_timeout_sec integer, p_queued_timeout_sec integer
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  r record;
  v_job jsonb;
  v_reason text;
  v_reaped jsonb := '[]'::jsonb;
begin
  for r in
    select 'training' as kind, id from public.training_jobs
     where status in ('queued', 'running')
    union all
    select 'conversion', id from public.conversion_jobs
     where status in ('awaiting_upload', 'queued', 'running')
    union all
    select 'separation', id from public.separation_jobs
     where status in ('queued', 'running')
  loop
    v_job := svc_private.lock_job(r.kind, r.id);
    v_reason := svc_private.stale_reason(v_job, p_heartbeat_timeout_sec, p_queued_timeout_sec);
    if v_reason = 'UPLOAD_EXPIRED' then
      v_job := svc_private.end_job(r.kind, v_job, 'canceled', v_reason,
        'The input was not uploaded before its upload link expired.');
    elsif v_reason = 'NOT_STARTED' then
      v_job := svc_private.end_job(r.kind, v_job, 'failed', v_reason,
        case when r.kind = 'separation'
             then 'The separation waited too long for a worker. Try again.'
             else 'The job waited too long for a worker. Your quota was refunded; please try again.'
        end);
    elsif v_reason = 'WORKER_LOST' then
      v_job := svc_private.end_job(r.kind, v_job, 'failed', v_reason,
        case when r.kind = 'separation'
             then 'The separation''s worker stopped responding. Try again.'
             else 'The worker stopped responding. Your quota was refunded; please try again.'
        end);
    end if;
    if v_reason is not null then
      v_reaped := v_reaped || jsonb_build_object('kind', r.kind, 'id', r.id,
                                                 'status', v_job ->> 'status',
                                                 'error_code', v_reason);
    end if;
  end loop;
  return v_reaped;
end $$;

-- Was: 20261122000007_operators.sql. Also hands out separations whose launch was lost (the
-- probe recorded the job but its follow-up never ran): queued, never taken, a minute old.
create or replace function public.take_requeued_jobs(p_limit integer default 50)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_taken jsonb := '[]'::jsonb;
  r record;
begin
  for r in
    select 'training' as kind, id from public.training_jobs
     where status = 'queued' and worker_call_id = 'requeued'
    union all
    select 'conversion', id from public.conversion_jobs
     where status = 'queued' and worker_call_id = 'requeued'
    union all
    select 'separation', id from public.separation_jobs
     where status = 'queued' and (worker_call_id = 'requeued'
           or (worker_call_id is null and created_at < now() - interval '1 minute'))
    limit least(greatest(p_limit, 1), 500)
  loop
    if r.kind = 'training' then
      update public.training_jobs set worker_call_id = 'dispatching'
       where id = r.id and status = 'queued' and worker_call_id = 'requeued';
    elsif r.kind = 'conversion' then
      update public.conversion_jobs set worker_call_id = 'dispatching'
       where id = r.id and status = 'queued' and worker_call_id = 'requeued';
    else
      update public.separation_jobs set worker_call_id = 'dispatching'
       where id = r.id and status = 'queued'
         and (worker_call_id = 'requeued' or worker_call_id is null);
    end if;
    if found then
      v_taken := v_taken || jsonb_build_object('kind', r.kind, 'id', r.id);
    end if;
  end loop;
  return v_taken;
end $$;

-- Was: 20261122000004_retention.sql. Live separations are canceled first too.
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
    union all
    select 'separation', id from public.separation_jobs
     where user_id = p_user_id and status in ('queued', 'running')
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

-- Operators' view (was: 20261122000007_operators.sql): separations are in flight too.
create or replace view ops.jobs_in_flight as
select 'training'::text as kind, j.id, j.user_id, u.email, j.profile_id, j.status,
       j.progress ->> 'phase' as phase, (j.progress ->> 'percent')::double precision as percent,
       j.attempt, j.worker_call_id, j.created_at, j.started_at, j.heartbeat_at,
       now() - coalesce(j.heartbeat_at, j.started_at) as heartbeat_age,
       now() - j.created_at as age
  from public.training_jobs j left join auth.users u on u.id = j.user_id
 where j.status in ('queued', 'running')
union all
select 'conversion', j.id, j.user_id, u.email, j.profile_id, j.status,
       j.progress ->> 'phase', (j.progress ->> 'percent')::double precision,
       j.attempt, j.worker_call_id, j.created_at, j.started_at, j.heartbeat_at,
       now() - coalesce(j.heartbeat_at, j.started_at), now() - j.created_at
  from public.conversion_jobs j left join auth.users u on u.id = j.user_id
 where j.status in ('awaiting_upload', 'queued', 'running')
union all
select 'separation', j.id, j.user_id, u.email, j.profile_id, j.status,
       j.progress ->> 'phase', (j.progress ->> 'percent')::double precision,
       j.attempt, j.worker_call_id, j.created_at, j.started_at, j.heartbeat_at,
       now() - coalesce(j.heartbeat_at, j.started_at), now() - j.created_at
  from public.separation_jobs j left join auth.users u on u.id = j.user_id
 where j.status in ('queued', 'running');
grant select on ops.jobs_in_flight to service_role;

-- Was: 20261122000007_operators.sql. Now why separations end too.
create or replace view ops.failures as
with ended as (
  select 'training'::text as source, status, error_code as code, error_message as message,
         finished_at as at
    from public.training_jobs
   where status in ('failed', 'canceled') and finished_at > now() - interval '7 days'
  union all
  select 'conversion', status, error_code, error_message, finished_at
    from public.conversion_jobs
   where status in ('failed', 'canceled') and finished_at > now() - interval '7 days'
  union all
  select 'separation', status, error_code, error_message, finished_at
    from public.separation_jobs
   where status in ('failed', 'canceled') and finished_at > now() - interval '7 days'
  union all
  select 'upload', status, reject_code, reject_message, probed_at
    from public.dataset_files
   where status = 'rejected' and probed_at > now() - interval '7 days'
)
select source, status, coalesce(code, 'UNKNOWN') as code,
       count(*) filter (where at > now() - interval '1 day') as last_day,
       count(*) as last_week, max(at) as last_at,
       (array_agg(message order by at desc))[1] as last_message
  from ended
 group by source, status, coalesce(code, 'UNKNOWN');
grant select on ops.failures to service_role;

-- Was: 20261122000007_operators.sql. The month's GPU seconds count separations too.
create or replace view ops.usage_this_period as
with t as (
  select user_id,
         count(*) filter (where created_at >= date_trunc('month', now() at time zone 'UTC')
                                               at time zone 'UTC') as trainings_this_month,
         sum((to_jsonb(j) ->> 'gpu_seconds')::double precision)
           filter (where created_at >= date_trunc('month', now() at time zone 'UTC')
                                        at time zone 'UTC') as training_gpu_seconds
    from public.training_jobs j group by user_id
), c as (
  select user_id,
         count(*) filter (where created_at >= (now() at time zone 'UTC')::date
                                                at time zone 'UTC') as conversions_today,
         sum((to_jsonb(j) ->> 'gpu_seconds')::double precision)
           filter (where created_at >= date_trunc('month', now() at time zone 'UTC')
                                        at time zone 'UTC') as conversion_gpu_seconds,
         coalesce(sum(input_size_bytes), 0) as conversion_input_bytes
    from public.conversion_jobs j group by user_id
), s as (
  select user_id,
         sum(gpu_seconds) filter (where created_at >= date_trunc('month', now() at time zone 'UTC')
                                                      at time zone 'UTC') as separation_gpu_seconds
    from public.separation_jobs group by user_id
), d as (
  select user_id, coalesce(sum(size_bytes), 0) as dataset_bytes
    from public.dataset_files where status <> 'deleted' group by user_id
), m as (
  select user_id, coalesce(sum(size_bytes), 0) as model_bytes
    from public.model_versions group by user_id
), q as (
  select user_id,
         max(used) filter (where kind = 'training'
                             and period_start >= date_trunc('month', now() at time zone 'UTC')::date)
           as trainings_used,
         max(used) filter (where kind = 'conversion'
                             and period_start >= (now() at time zone 'UTC')::date)
           as conversions_used
    from public.usage_counters group by user_id
), g as (
  select user_id,
         sum(extra) filter (where kind = 'training'
                              and period_start = date_trunc('month', now() at time zone 'UTC')::date)
           as trainings_granted,
         sum(extra) filter (where kind = 'conversion'
                              and period_start = (now() at time zone 'UTC')::date)
           as conversions_granted
    from public.quota_grants group by user_id
)
select u.id as user_id, u.email,
       coalesce(q.trainings_used, 0) as trainings_used,
       coalesce(t.trainings_this_month, 0) as trainings_this_month,
       o.trainings_per_month as trainings_limit_override,
       coalesce(g.trainings_granted, 0) as trainings_granted,
       coalesce(q.conversions_used, 0) as conversions_used,
       coalesce(c.conversions_today, 0) as conversions_today,
       o.conversions_per_day as conversions_limit_override,
       coalesce(g.conversions_granted, 0) as conversions_granted,
       coalesce(t.training_gpu_seconds, 0) + coalesce(c.conversion_gpu_seconds, 0)
         + coalesce(s.separation_gpu_seconds, 0) as gpu_seconds_this_month,
       (to_jsonb(o) ->> 'gpu_seconds_per_month')::integer as gpu_limit_override,
       coalesce(d.dataset_bytes, 0) as dataset_bytes,
       coalesce(m.model_bytes, 0) as model_bytes,
       coalesce(c.conversion_input_bytes, 0) as conversion_input_bytes,
       coalesce(d.dataset_bytes, 0) + coalesce(m.model_bytes, 0)
         + coalesce(c.conversion_input_bytes, 0) as stored_bytes,
       (du.user_id is not null) as disabled
  from auth.users u
  left join t on t.user_id = u.id
  left join c on c.user_id = u.id
  left join s on s.user_id = u.id
  left join d on d.user_id = u.id
  left join m on m.user_id = u.id
  left join q on q.user_id = u.id
  left join g on g.user_id = u.id
  left join public.quota_overrides o on o.user_id = u.id
  left join ops.disabled_users du on du.user_id = u.id;
grant select on ops.usage_this_period to service_role;

-- Was: 20261122000007_operators.sql. A failed separation is requeued without a counted
-- quota (it takes none) while its mix is still ready; the others as before.
create or replace function ops.requeue_job(
  p_kind text, p_job_id uuid, p_reason text, p_by text default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
  v_user uuid := (v_job ->> 'user_id')::uuid;
  v_period date;
  v_live integer;
begin
  if v_job ->> 'status' <> 'failed' then
    perform svc_private.invalid_transition(p_kind, v_job, 'queued');
  end if;
  if exists (select 1 from ops.audit_log where action = 'requeue_job' and target_id = p_job_id) then
    perform svc_private.raise_error('INVALID_TRANSITION', 'That job has been requeued once already.',
                                    jsonb_build_object('kind', p_kind, 'id', p_job_id));
  end if;
  perform svc_private.owned_profile(v_user, (v_job ->> 'profile_id')::uuid);
  if exists (select 1 from ops.disabled_users where user_id = v_user) then
    perform svc_private.raise_error('USER_DISABLED', 'That job''s user is disabled.',
                                    jsonb_build_object('user_id', v_user));
  end if;
  if p_kind = 'separation' then
    if not exists (select 1 from public.dataset_files
                    where id = (v_job ->> 'source_file_id')::uuid and status = 'ready') then
      perform svc_private.raise_error('INVALID_TRANSITION', 'That separation''s song is gone.',
                                      jsonb_build_object('kind', p_kind, 'id', p_job_id));
    end if;
    perform svc_private.audit(p_by, 'requeue_job', p_kind, p_job_id, p_reason,
      jsonb_build_object('error_code', v_job ->> 'error_code'));
    -- a vocal the failed attempt registered was deleted with it: the retry writes a new one
    update public.separation_jobs set derived_file_id = gen_random_uuid() where id = p_job_id;
    return svc_private.update_job(p_kind, v_job, jsonb_build_object(
      'status', 'queued', 'error_code', null, 'error_message', null, 'finished_at', null,
      'heartbeat_at', null, 'worker_call_id', 'requeued',
      'progress', jsonb_build_object('phase', 'queued', 'requeued', true)));
  end if;
  v_period := svc_private.reserve_quota(v_user, p_kind, 2147483647);
  if p_kind = 'training' then
    select count(*) into v_live from public.training_jobs
     where user_id = v_user and status in ('queued', 'running');
  else
    select count(*) into v_live from public.conversion_jobs
     where user_id = v_user and status in ('awaiting_upload', 'queued', 'running');
  end if;
  if v_live > 0 then
    perform svc_private.raise_error(upper(p_kind) || '_IN_PROGRESS',
      format('That user already has a %s in progress.', p_kind),
      jsonb_build_object('user_id', v_user));
  end if;
  perform svc_private.audit(p_by, 'requeue_job', p_kind, p_job_id, p_reason,
    jsonb_build_object('error_code', v_job ->> 'error_code'));
  execute format('update public.%I set quota_period_start = $1 where id = $2',
                 svc_private.job_table(p_kind)) using v_period, p_job_id;
  return svc_private.update_job(p_kind, v_job, jsonb_build_object(
    'status', 'queued', 'error_code', null, 'error_message', null, 'finished_at', null,
    'heartbeat_at', null, 'worker_call_id', 'requeued', 'quota_state', 'reserved',
    'progress', jsonb_build_object('phase', 'queued', 'requeued', true)));
end $$;
revoke all on function ops.requeue_job(text, uuid, text, text) from public, anon, authenticated;
grant execute on function ops.requeue_job(text, uuid, text, text) to service_role;

select svc_private.restrict_to_service(array[
  'delete_profile', 'register_upload', 'record_probe', 'singer_check_files', 'training_inputs',
  'delete_dataset_file', 'start_training', 'take_separation', 'register_separated_vocal',
  'retry_separation',
  'finish_separation', 'separation_source', 'reap_stale_jobs', 'take_requeued_jobs',
  'erase_user_data']);
select svc_private.restrict_to_service(array[]::text[]);

-- The worker login: the probe takes a ready mix's separation and records the launched
-- worker's call id; the separation worker reads its mix, registers its vocal and finishes.
select svc_private.grant_to_worker(array[
  'take_separation', 'set_job_call_id', 'separation_source', 'register_separated_vocal',
  'finish_separation']);
