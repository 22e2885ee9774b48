-- Text in a voice: a line of text spoken by a text-to-speech engine and converted into the
-- chosen voice (gpu/text/). A job kind of the shared machine (30_job_machine.sql): queued when
-- it is asked for (no upload), a unit of its own daily quota, GPU time charged like a
-- conversion's. Its files are a WAV and an MP3 under the profile's `speech/` prefix, removed
-- after the conversions' retention and whenever its row goes (profile deletion, erasure).

set check_function_bodies = off;

create table public.text_jobs (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  -- The voice: a trained model version (removed with it), or an instant voice (gpu/instant/).
  voice_kind text not null default 'trained' check (voice_kind in ('trained', 'instant')),
  model_version_id uuid references public.model_versions (id) on delete cascade,
  instant_voice_id uuid references public.instant_voices (id) on delete cascade,
  text text not null check (char_length(text) between 1 and 5000),
  language text not null check (language ~ '^[a-z]{2,3}(-[a-z]{2,4})?$'),
  params jsonb not null default '{}'::jsonb,
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  progress jsonb not null default '{}'::jsonb,
  worker_call_id text,
  attempt integer not null default 0 check (attempt >= 0),
  heartbeat_at timestamptz,
  error_code text,
  error_message text,
  quota_period_start date not null,
  quota_state text not null default 'reserved'
    check (quota_state in ('reserved', 'charged', 'refunded')),
  gpu_seconds double precision not null default 0,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  queued_at timestamptz not null default now(),
  -- Results: the WAV and the MP3 (44.1 kHz), their length, and what the worker measured.
  output_key text unique,
  mp3_key text unique,
  output_seconds double precision check (output_seconds >= 0),
  report jsonb,
  files_removed_at timestamptz,
  check ((voice_kind = 'trained') = (model_version_id is not null)),
  check ((voice_kind = 'instant') = (instant_voice_id is not null))
);
create index text_jobs_user_idx on public.text_jobs (user_id, created_at desc);
create index text_jobs_profile_idx
  on public.text_jobs (profile_id, created_at desc);
create index text_jobs_model_idx on public.text_jobs (model_version_id);
create index text_jobs_instant_voice_idx on public.text_jobs (instant_voice_id);
create index text_jobs_active_idx on public.text_jobs (status, heartbeat_at)
  where status in ('queued', 'running');
alter table public.text_jobs enable row level security;
create policy text_jobs_owner_select on public.text_jobs
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.text_jobs from anon, authenticated;
grant select on table public.text_jobs to authenticated;

-- The quota (lines a day; `quota_overrides` has no column for it) and the kind: a unit
-- reserved at the start, refunded when it does not succeed; one line at a time per person.
insert into svc_private.quotas (name, period, override_column) values ('text', 'day', null)
  on conflict (name) do nothing;
select svc_private.declare_job_kind('text', 'public.text_jobs',
  p_quota => 'text', p_busy_message =>
    'A line is already being spoken for your account. Wait for it or cancel it.');

-- The object keys of a text job's results.
create or replace function svc_private.text_keys(p_user_id uuid, p_profile_id uuid, p_job_id uuid)
returns text[] language sql immutable set search_path = '' as $$
  select array[format('vc/users/%s/profiles/%s/speech/%s/speech.wav', p_user_id, p_profile_id,
                      p_job_id),
               format('vc/users/%s/profiles/%s/speech/%s/speech.mp3', p_user_id, p_profile_id,
                      p_job_id)]
$$;

-- Starts a text job, queued: the text checked again here (the API checked it first, with the
-- same limit), the voice resolved (a trained one defaults to the profile's active model),
-- then the GPU budget, the quota and the one-at-a-time rule.
create or replace function public.start_text(
  p_user_id uuid, p_profile_id uuid, p_job_id uuid, p_voice_kind text,
  p_model_version_id uuid, p_instant_voice_id uuid, p_text text, p_language text,
  p_params jsonb, p_max_chars integer, p_default_limit integer, p_max_active integer default 1,
  p_gpu_seconds_per_month integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles := svc_private.owned_profile(p_user_id, p_profile_id);
  v_model_id uuid;
  v_instant_status text;
  v_job public.text_jobs;
begin
  if p_text is null or btrim(p_text) = '' then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The text is empty: type something to say.',
                                    jsonb_build_object('field', 'text'));
  end if;
  if char_length(p_text) > p_max_chars then
    perform svc_private.raise_error('INVALID_ARGUMENT',
      format('The text is %s characters long; at most %s can be spoken.',
             char_length(p_text), p_max_chars),
      jsonb_build_object('field', 'text', 'length', char_length(p_text),
                         'max_chars', p_max_chars));
  end if;
  if p_text ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]' then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The text holds a control character.',
                                    jsonb_build_object('field', 'text'));
  end if;
  if p_voice_kind = 'trained' then
    v_model_id := coalesce(p_model_version_id, v_profile.active_model_version_id);
    if v_model_id is null then
      perform svc_private.raise_error('NO_MODEL',
        'This profile has no trained model yet. Train one first.',
        jsonb_build_object('profile_id', p_profile_id));
    end if;
    if not exists (select 1 from public.model_versions where id = v_model_id
                     and profile_id = p_profile_id and status = 'ready') then
      perform svc_private.raise_error('NOT_FOUND', 'That model version does not exist.',
                                      jsonb_build_object('model_version_id', v_model_id));
    end if;
  elsif p_voice_kind <> 'instant' or p_instant_voice_id is null then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'Name a trained or an instant voice.',
                                    jsonb_build_object('field', 'voice'));
  else
    -- an instant voice (not one of its clips) of this profile whose reference was uploaded
    -- and passed its check
    select v.status into v_instant_status from public.instant_voices v
     where v.id = p_instant_voice_id and v.user_id = p_user_id and v.profile_id = p_profile_id
       and v.clip_of is null
       for share;
    if v_instant_status is null then
      perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                      jsonb_build_object('instant_voice_id', p_instant_voice_id));
    elsif v_instant_status <> 'ready' then
      perform svc_private.raise_error('REFERENCE_NOT_READY',
        'This instant voice''s reference is not ready: it has not been uploaded and checked, '
        || 'or it was rejected.',
        jsonb_build_object('instant_voice_id', p_instant_voice_id, 'status', v_instant_status));
    end if;
  end if;
  insert into public.text_jobs
    (id, user_id, profile_id, voice_kind, model_version_id, instant_voice_id, text, language,
     params, progress, quota_period_start)
  values (p_job_id, p_user_id, p_profile_id, p_voice_kind, v_model_id,
          case when p_voice_kind = 'instant' then p_instant_voice_id end, p_text, p_language,
          coalesce(p_params, '{}'::jsonb), jsonb_build_object('phase', 'queued'),
          svc_private.admit_job('text', p_user_id, p_default_limit, p_max_active,
                                p_gpu_seconds_per_month))
  returning * into v_job;
  return to_jsonb(v_job);
end $$;

-- What the worker speaks with, by the job alone: the model version, and the voice's speaker
-- centroid, the mean of the Resemblyzer embeddings the one-singer check stored for the
-- profile's ready files (null before that check ran).
create or replace function public.text_voice(p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_job public.text_jobs;
  v_model jsonb;
  v_instant jsonb;
  v_centroid real[];
begin
  select j.* into v_job from public.text_jobs j
    join public.voice_profiles p on p.id = j.profile_id
   where j.id = p_job_id and p.deleted_at is null;
  if v_job.id is null then
    perform svc_private.raise_error('NOT_FOUND', 'That text job does not exist.',
                                    jsonb_build_object('job_id', p_job_id));
  end if;
  if v_job.voice_kind = 'instant' then
    -- the worker measures the centroid from the reference itself
    v_instant := svc_private.instant_voice_for_worker(v_job.instant_voice_id);
    if v_instant is null then
      perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                      jsonb_build_object('job_id', p_job_id));
    end if;
    return jsonb_build_object('voice_kind', 'instant', 'model_version', null,
                              'instant_voice_id', v_job.instant_voice_id,
                              'instant_voice', v_instant, 'centroid', null);
  end if;
  select to_jsonb(m) into v_model from public.model_versions m where m.id = v_job.model_version_id;
  select array_agg(v order by i) into v_centroid
    from (select u.i, avg(u.v)::real as v
            from public.dataset_file_embeddings x
            join public.dataset_files f on f.id = x.file_id
           cross join lateral unnest(x.embedding) with ordinality as u(v, i)
           where x.profile_id = v_job.profile_id and f.status = 'ready'
           group by u.i) c;
  return jsonb_build_object('voice_kind', v_job.voice_kind, 'model_version', v_model,
                            'instant_voice_id', v_job.instant_voice_id,
                            'centroid', to_jsonb(v_centroid));
end $$;

create or replace function public.finish_text(
  p_job_id uuid, p_output_key text, p_mp3_key text, p_output_seconds double precision,
  p_report jsonb, p_attempt integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.finishing_job('text', p_job_id, p_attempt);
  v_keys text[];
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  v_keys := svc_private.text_keys((v_job ->> 'user_id')::uuid, (v_job ->> 'profile_id')::uuid,
                                  p_job_id);
  if p_output_key is distinct from v_keys[1] or p_mp3_key is distinct from v_keys[2] then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The output keys do not match the job.',
      jsonb_build_object('output_key', p_output_key, 'mp3_key', p_mp3_key));
  end if;
  update public.text_jobs
     set output_key = p_output_key, mp3_key = p_mp3_key, output_seconds = p_output_seconds,
         report = p_report
   where id = p_job_id;
  return svc_private.succeed_job('text', v_job, '{"percent": 100}');
end $$;

-- Retention: a finished text job's files go after p_retention_sec (a canceled or failed one's
-- at once: it has none, or a half-written one); the row stays, saying they were removed.
create or replace function public.expire_text_jobs(p_retention_sec integer)
returns integer language plpgsql security definer set search_path = '' as $$
declare
  v_queued integer := 0;
  r record;
begin
  for r in
    update public.text_jobs t set files_removed_at = now()
     where t.files_removed_at is null
       and t.status in ('succeeded', 'failed', 'canceled')
       and (t.status <> 'succeeded'
            or t.finished_at < now() - make_interval(secs => p_retention_sec))
    returning t.user_id, t.profile_id, t.id
  loop
    v_queued := v_queued + svc_private.enqueue_deletions(r.user_id,
      svc_private.text_keys(r.user_id, r.profile_id, r.id), 'text_expired');
  end loop;
  return v_queued;
end $$;

-- A text job's row going (its profile purged, its model version deleted, an account erased)
-- takes its files with it: queued for the deletion task in the same transaction.
create or replace function svc_private.text_job_deleted()
returns trigger language plpgsql set search_path = '' as $$
begin
  if old.files_removed_at is null then
    perform svc_private.enqueue_deletions(old.user_id,
      svc_private.text_keys(old.user_id, old.profile_id, old.id), 'text_deleted');
  end if;
  return old;
end $$;

create trigger text_job_deleted before delete on public.text_jobs
  for each row execute function svc_private.text_job_deleted();

-- Realtime: the page follows its own lines' progress (RLS filters the rows).
do $$
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime')
     and not exists (select 1 from pg_publication_tables where pubname = 'supabase_realtime'
                       and schemaname = 'public' and tablename = 'text_jobs') then
    alter publication supabase_realtime add table public.text_jobs;
  end if;
end $$;
