-- Instant voice (issue 26): a named reference recording (an "instant voice", with the person's
-- consent stored beside it) and instant conversions (job kind 'instant' on the job machine,
-- 30_job_machine.sql), which convert with Seed-VC from that reference, no training.

set check_function_bodies = off;

create table public.instant_voices (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  name text not null check (length(name) between 1 and 100),
  status text not null default 'awaiting_upload'
    check (status in ('awaiting_upload', 'ready', 'rejected')),
  reference_key text not null unique,
  reference_filename text,
  reference_size_bytes bigint check (reference_size_bytes > 0),
  reference_seconds double precision check (reference_seconds >= 0),
  error_code text,
  error_message text,
  -- what the person confirmed (their voice, or their right to use it) and when
  consent_text text not null check (length(consent_text) > 0),
  consent_at timestamptz not null default now(),
  upload_expires_at timestamptz,
  created_at timestamptz not null default now(),
  -- set on a clip added to a voice (add_instant_clip): the voice it belongs to; such a row is
  -- uploaded, probed, claimed and erased as a first reference is, and listed inside its voice
  clip_of uuid references public.instant_voices (id) on delete cascade
);
create index instant_voices_profile_idx
  on public.instant_voices (profile_id, created_at desc);
create index instant_voices_clip_idx
  on public.instant_voices (clip_of, created_at) where clip_of is not null;
alter table public.instant_voices enable row level security;
create policy instant_voices_owner_select on public.instant_voices
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.instant_voices from anon, authenticated;
grant select on table public.instant_voices to authenticated;

create table public.instant_jobs (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  voice_id uuid not null references public.instant_voices (id) on delete cascade,
  status text not null default 'awaiting_upload'
    check (status in ('awaiting_upload', 'queued', 'running', 'succeeded', 'failed', 'canceled')),
  params jsonb not null default '{}'::jsonb,
  input_key text not null unique,
  input_filename text,
  input_size_bytes bigint check (input_size_bytes > 0),
  output_key text unique,
  input_duration_sec double precision check (input_duration_sec >= 0),
  progress jsonb not null default '{}'::jsonb,
  worker_call_id text,
  attempt integer not null default 0 check (attempt >= 0),
  heartbeat_at timestamptz,
  error_code text,
  error_message text,
  quota_period_start date not null,
  quota_state text not null default 'reserved'
    check (quota_state in ('reserved', 'charged', 'refunded')),
  upload_expires_at timestamptz,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  gpu_seconds double precision not null default 0,
  files_removed_at timestamptz,
  pitch jsonb,
  -- speaker similarity to the reference (and its ceiling), F0 correlation to the input
  quality jsonb,
  queued_at timestamptz not null default now()
);
create index instant_jobs_user_idx on public.instant_jobs (user_id, created_at desc);
create index instant_jobs_profile_idx
  on public.instant_jobs (profile_id, created_at desc);
create index instant_jobs_active_idx on public.instant_jobs (status, heartbeat_at)
  where status in ('awaiting_upload', 'queued', 'running');
alter table public.instant_jobs enable row level security;
create policy instant_jobs_owner_select on public.instant_jobs
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.instant_jobs from anon, authenticated;
grant select on table public.instant_jobs to authenticated;


-- Its own daily count (settings.instant_conversions_per_day; no per-user override column) and
-- the job kind on the shared machine: a unit each, refunded when it does not succeed; a second
-- live one is refused.
insert into svc_private.quotas (name, period, override_column) values ('instant', 'day', null)
on conflict (name) do nothing;
select svc_private.declare_job_kind('instant', 'public.instant_jobs',
  p_quota => 'instant', p_busy_message =>
    'An instant conversion is already in progress for your account. Wait for it or cancel it.');

-- A named reference awaiting its upload; the consent text is stored with it.
create or replace function public.create_instant_voice(
  p_user_id uuid, p_profile_id uuid, p_voice_id uuid, p_name text, p_reference_key text,
  p_filename text, p_size_bytes bigint, p_consent_text text, p_upload_expires_at timestamptz
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_voice public.instant_voices;
begin
  perform svc_private.owned_profile(p_user_id, p_profile_id);
  if p_reference_key not like format('vc/users/%s/profiles/%s/instant/%s/reference.%%',
                                     p_user_id, p_profile_id, p_voice_id) then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The object key does not match its owner.',
                                    jsonb_build_object('reference_key', p_reference_key));
  end if;
  if coalesce(length(trim(p_consent_text)), 0) = 0 then
    perform svc_private.raise_error('CONSENT_REQUIRED',
      'Confirm that the reference is your own voice or that you have the right to use it.',
      '{}'::jsonb);
  end if;
  insert into public.instant_voices
    (id, user_id, profile_id, name, reference_key, reference_filename, reference_size_bytes,
     consent_text, upload_expires_at)
  values (p_voice_id, p_user_id, p_profile_id, p_name, p_reference_key, p_filename, p_size_bytes,
          p_consent_text, p_upload_expires_at)
  returning * into v_voice;
  return to_jsonb(v_voice);
end $$;

-- A voice as the API shows it: its own row, and its added clips, oldest first.
create or replace function svc_private.instant_voice_json(p_voice public.instant_voices)
returns jsonb language sql stable set search_path = '' as $$
  select to_jsonb(p_voice) || jsonb_build_object('clips', coalesce((
    select jsonb_agg(jsonb_build_object(
             'id', c.id, 'status', c.status, 'reference_filename', c.reference_filename,
             'reference_seconds', c.reference_seconds, 'error_code', c.error_code,
             'error_message', c.error_message, 'consent_text', c.consent_text,
             'consent_at', c.consent_at, 'created_at', c.created_at)
           order by c.created_at, c.id)
      from public.instant_voices c where c.clip_of = p_voice.id), '[]'::jsonb))
$$;

create or replace function public.get_instant_voice_by_id(p_voice_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select to_jsonb(v) from public.instant_voices v where v.id = p_voice_id
$$;

create or replace function public.get_instant_voice(p_user_id uuid, p_voice_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_voice jsonb;
begin
  select svc_private.instant_voice_json(v) into v_voice from public.instant_voices v
   where v.id = p_voice_id and v.user_id = p_user_id and v.clip_of is null;
  if v_voice is null then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('voice_id', p_voice_id));
  end if;
  return v_voice;
end $$;

create or replace function public.list_instant_voices(p_user_id uuid, p_profile_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(svc_private.instant_voice_json(v) order by v.created_at desc),
                  '[]'::jsonb)
    from public.instant_voices v
   where v.user_id = p_user_id and v.profile_id = p_profile_id and v.clip_of is null
$$;

-- Another clip for a voice, awaiting its upload (probed like the first), with the consent the
-- person confirmed again for it. Refused past `p_max_clips` clips in all, or once the ready
-- clips already fill the `p_max_seconds` the model uses (more would not be heard).
create or replace function public.add_instant_clip(
  p_user_id uuid, p_voice_id uuid, p_clip_id uuid, p_reference_key text, p_filename text,
  p_size_bytes bigint, p_consent_text text, p_upload_expires_at timestamptz,
  p_max_clips integer, p_max_seconds double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_voice public.instant_voices;
  v_clips integer;
  v_seconds double precision;
  v_clip public.instant_voices;
begin
  select * into v_voice from public.instant_voices
   where id = p_voice_id and user_id = p_user_id and clip_of is null for update;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('voice_id', p_voice_id));
  end if;
  perform svc_private.owned_profile(p_user_id, v_voice.profile_id);
  if v_voice.status = 'rejected' then
    perform svc_private.raise_error('REFERENCE_NOT_READY',
      'This voice''s first sample was rejected: delete the voice and start it again.',
      jsonb_build_object('voice_id', p_voice_id, 'status', v_voice.status));
  end if;
  if p_reference_key not like format('vc/users/%s/profiles/%s/instant/%s/reference.%%',
                                     p_user_id, v_voice.profile_id, p_clip_id) then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The object key does not match its owner.',
                                    jsonb_build_object('reference_key', p_reference_key));
  end if;
  if coalesce(length(trim(p_consent_text)), 0) = 0 then
    perform svc_private.raise_error('CONSENT_REQUIRED',
      'Confirm that the reference is your own voice or that you have the right to use it.',
      '{}'::jsonb);
  end if;
  select 1 + count(*), coalesce(v_voice.reference_seconds, 0)
           + coalesce(sum(reference_seconds) filter (where status = 'ready'), 0)
    into v_clips, v_seconds
    from public.instant_voices where clip_of = p_voice_id;
  if v_clips >= p_max_clips then
    perform svc_private.raise_error('TOO_MANY_FILES',
      format('This voice has %s clips, the most it takes. Delete one to add another.', v_clips),
      jsonb_build_object('clips', v_clips, 'max_clips', p_max_clips));
  end if;
  if v_seconds >= p_max_seconds then
    perform svc_private.raise_error('TOO_MANY_FILES',
      format('This voice''s clips already hold %s s, all the instant model uses. '
             'Delete a clip to add another.', round(v_seconds::numeric, 1)),
      jsonb_build_object('seconds', v_seconds, 'max_seconds', p_max_seconds));
  end if;
  insert into public.instant_voices
    (id, user_id, profile_id, clip_of, name, reference_key, reference_filename,
     reference_size_bytes, consent_text, upload_expires_at)
  values (p_clip_id, p_user_id, v_voice.profile_id, p_voice_id, v_voice.name, p_reference_key,
          p_filename, p_size_bytes, p_consent_text, p_upload_expires_at)
  returning * into v_clip;
  return to_jsonb(v_clip);
end $$;

-- The reference's probe: awaiting_upload → ready (with its length) or rejected (with why).
create or replace function public.record_instant_reference(
  p_voice_id uuid, p_status text, p_seconds double precision, p_error_code text,
  p_error_message text
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_voice public.instant_voices;
begin
  select * into v_voice from public.instant_voices where id = p_voice_id for update;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('voice_id', p_voice_id));
  end if;
  if v_voice.status <> 'awaiting_upload' then
    return to_jsonb(v_voice);
  end if;
  if p_status not in ('ready', 'rejected') then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'Unknown reference status.',
                                    jsonb_build_object('status', p_status));
  end if;
  update public.instant_voices
     set status = p_status, reference_seconds = p_seconds, error_code = p_error_code,
         error_message = p_error_message
   where id = p_voice_id
  returning * into v_voice;
  return to_jsonb(v_voice);
end $$;

-- Deletes a voice (every clip and conversion with it) or one added clip; returns every object
-- key they held, for the caller to delete from the bucket. Kept while a conversion with the
-- voice runs.
create or replace function public.delete_instant_voice(p_user_id uuid, p_voice_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_voice public.instant_voices;
  v_owner uuid;
  v_keys text[];
begin
  select * into v_voice from public.instant_voices
   where id = p_voice_id and user_id = p_user_id for update;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('voice_id', p_voice_id));
  end if;
  v_owner := coalesce(v_voice.clip_of, v_voice.id);  -- the voice whose jobs count
  perform 1 from public.instant_jobs where voice_id = v_owner for update;
  if exists (select 1 from public.instant_jobs where voice_id = v_owner
               and status in ('queued', 'running')) then
    perform svc_private.raise_error('INSTANT_IN_PROGRESS',
      'A conversion with this voice is still running. Cancel it or wait for it first.',
      jsonb_build_object('voice_id', v_owner));
  end if;
  perform 1 from public.text_jobs where instant_voice_id = v_owner for update;
  if exists (select 1 from public.text_jobs where instant_voice_id = v_owner
               and status in ('queued', 'running')) then
    perform svc_private.raise_error('INSTANT_IN_PROGRESS',
      'A line is still being spoken in this voice. Cancel it or wait for it first.',
      jsonb_build_object('voice_id', v_owner));
  end if;
  if v_voice.clip_of is not null then
    delete from public.instant_voices where id = p_voice_id;
    return jsonb_build_object('voice_id', p_voice_id, 'keys', to_jsonb(array[v_voice.reference_key]));
  end if;
  select array[v_voice.reference_key]
         || coalesce((select array_agg(c.reference_key order by c.created_at)
                        from public.instant_voices c where c.clip_of = p_voice_id), '{}')
         || coalesce(array_agg(k) filter (where k is not null), '{}')
    into v_keys
    from public.instant_jobs j,
         unnest(array[j.input_key, j.output_key] || svc_private.instant_part_keys(j)) k
   where j.voice_id = p_voice_id;
  delete from public.instant_voices where id = p_voice_id;
  return jsonb_build_object('voice_id', p_voice_id, 'keys', to_jsonb(v_keys));
end $$;

-- A song's converted vocal and instrumental beside its mix; none for a sung stem.
create or replace function svc_private.instant_part_keys(p_job public.instant_jobs)
returns text[] language sql immutable set search_path = '' as $$
  select case when p_job.params ->> 'input_kind' = 'song' then array[
    format('vc/users/%s/profiles/%s/instant-jobs/%s/vocal.wav',
           p_job.user_id, p_job.profile_id, p_job.id),
    format('vc/users/%s/profiles/%s/instant-jobs/%s/instrumental.wav',
           p_job.user_id, p_job.profile_id, p_job.id)]
  else '{}'::text[] end
$$;

-- Whatever deletes an instant voice or job (its profile's purge, by cascade, or the voice's
-- own delete) queues its objects with it (pipeline/retention.py deletes them) at once, rather
-- than leaving them to the orphan sweep's grace.
create or replace function svc_private.queue_instant_objects()
returns trigger language plpgsql set search_path = '' as $$
begin
  if tg_table_name = 'instant_voices' then
    perform svc_private.enqueue_deletions(old.user_id, array[old.reference_key], 'instant voice');
  else
    perform svc_private.enqueue_deletions(old.user_id,
      array[old.input_key, old.output_key] || svc_private.instant_part_keys(old), 'instant job');
  end if;
  return old;
end $$;

create trigger queue_instant_objects after delete on public.instant_voices
  for each row execute function svc_private.queue_instant_objects();
create trigger queue_instant_objects after delete on public.instant_jobs
  for each row execute function svc_private.queue_instant_objects();

-- An instant conversion awaiting its input's upload, its own quota unit reserved; refuses while
-- the GPU budget is spent, while another runs, or when the voice's reference is not ready.
create or replace function public.create_instant_job(
  p_user_id uuid, p_voice_id uuid, p_job_id uuid, p_params jsonb, p_input_key text,
  p_input_filename text, p_input_size_bytes bigint, p_upload_expires_at timestamptz,
  p_default_limit integer, p_max_active integer default 1,
  p_gpu_seconds_per_month integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_voice public.instant_voices;
  v_period date;
  v_job public.instant_jobs;
  v_stale uuid;
begin
  select * into v_voice from public.instant_voices
   where id = p_voice_id and user_id = p_user_id and clip_of is null for update;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('voice_id', p_voice_id));
  end if;
  perform svc_private.owned_profile(p_user_id, v_voice.profile_id);
  if v_voice.status <> 'ready' then
    perform svc_private.raise_error('REFERENCE_NOT_READY',
      case v_voice.status when 'rejected' then 'This voice''s reference was rejected: '
                                                || coalesce(v_voice.error_message, '')
           else 'This voice''s reference has not been uploaded and checked yet.' end,
      jsonb_build_object('voice_id', p_voice_id, 'status', v_voice.status));
  end if;
  if p_input_key not like format('vc/users/%s/profiles/%s/instant-jobs/%s/input.%%',
                                 p_user_id, v_voice.profile_id, p_job_id) then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The object key does not match its owner.',
                                    jsonb_build_object('input_key', p_input_key));
  end if;
  -- a ticket whose input never came must not hold the one-at-a-time slot: it ends here
  -- (canceled, refunded) rather than waiting for the next reaper run
  for v_stale in select id from public.instant_jobs
                  where user_id = p_user_id and status = 'awaiting_upload'
                    and upload_expires_at < now() order by id for update loop
    perform svc_private.end_job('instant', svc_private.lock_job('instant', v_stale),
      'canceled', 'UPLOAD_EXPIRED', 'The input was not uploaded in time.');
  end loop;
  v_period := svc_private.admit_job('instant', p_user_id, p_default_limit, p_max_active,
                                   p_gpu_seconds_per_month);
  insert into public.instant_jobs
    (id, user_id, profile_id, voice_id, params, input_key, input_filename, input_size_bytes,
     upload_expires_at, progress, quota_period_start)
  values (p_job_id, p_user_id, v_voice.profile_id, p_voice_id, coalesce(p_params, '{}'::jsonb),
          p_input_key, p_input_filename, p_input_size_bytes, p_upload_expires_at,
          jsonb_build_object('phase', 'awaiting_upload'), v_period)
  returning * into v_job;
  return to_jsonb(v_job);
end $$;

-- The input's upload event: awaiting_upload → queued. A duplicate or late event is a no-op.
create or replace function public.queue_instant_job(p_job_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job('instant', p_job_id);
begin
  if v_job ->> 'status' <> 'awaiting_upload' then
    return v_job;
  end if;
  return svc_private.update_job('instant', v_job, jsonb_build_object(
    'status', 'queued', 'progress', jsonb_build_object('phase', 'queued')));
end $$;

-- A voice as its workers hear it (instant conversions and text spoken in it): the voice's
-- row and `clip_keys`, the keys of its added clips that passed the probe, oldest first; null
-- for a clip or a voice that is not ready.
create or replace function svc_private.instant_voice_for_worker(p_voice_id uuid)
returns jsonb language sql stable set search_path = '' as $$
  select to_jsonb(v) || jsonb_build_object('clip_keys', coalesce((
           select jsonb_agg(c.reference_key order by c.created_at, c.id)
             from public.instant_voices c where c.clip_of = v.id and c.status = 'ready'),
           '[]'::jsonb))
    from public.instant_voices v
   where v.id = p_voice_id and v.clip_of is null and v.status = 'ready'
$$;

-- The reference an instant job converts with, for the worker (which holds only the job id):
-- the voice's row and `clip_keys`, its added clips that passed the probe, oldest first.
create or replace function public.instant_job_voice(p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_voice jsonb;
begin
  select svc_private.instant_voice_for_worker(j.voice_id) into v_voice
    from public.instant_jobs j where j.id = p_job_id;
  if v_voice is null then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('job_id', p_job_id));
  end if;
  return v_voice;
end $$;

create or replace function public.finish_instant_job(
  p_job_id uuid, p_output_key text, p_input_duration_sec double precision, p_pitch jsonb,
  p_quality jsonb, p_attempt integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.finishing_job('instant', p_job_id, p_attempt);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;  -- a repeated finish, or a job canceled meanwhile
  end if;
  if p_output_key <> format('vc/users/%s/profiles/%s/instant-jobs/%s/output.wav',
                            v_job ->> 'user_id', v_job ->> 'profile_id', p_job_id) then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The output key does not match the job.',
                                    jsonb_build_object('output_key', p_output_key));
  end if;
  update public.instant_jobs
     set output_key = p_output_key, input_duration_sec = p_input_duration_sec,
         pitch = p_pitch, quality = p_quality
   where id = p_job_id;
  return svc_private.succeed_job('instant', v_job, '{"percent": 100}');
end $$;
