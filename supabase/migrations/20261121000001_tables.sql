-- Tables, constraints, indexes, row level security and realtime for svc-pipeline.
-- Every statement is safe to run twice.

create table if not exists public.voice_profiles (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  name text not null check (char_length(btrim(name)) between 1 and 80),
  status text not null default 'draft' check (status in ('draft', 'ready', 'disabled')),
  active_model_version_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz
);
create index if not exists voice_profiles_user_idx
  on public.voice_profiles (user_id, created_at desc) where deleted_at is null;
create unique index if not exists voice_profiles_user_name_key
  on public.voice_profiles (user_id, lower(btrim(name))) where deleted_at is null;

create table if not exists public.dataset_files (
  id uuid primary key,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  object_key text not null unique,
  filename text not null check (char_length(filename) between 1 and 255),
  content_type text not null,
  status text not null default 'pending'
    check (status in ('pending', 'ready', 'rejected', 'deleted')),
  size_bytes bigint not null check (size_bytes > 0),
  etag text,
  duration_sec double precision check (duration_sec >= 0),
  sample_rate integer check (sample_rate > 0),
  channels integer check (channels > 0),
  format text,
  loudness_lufs double precision,
  peak_dbfs double precision,
  clipping_ratio double precision check (clipping_ratio between 0 and 1),
  silence_ratio double precision check (silence_ratio between 0 and 1),
  snr_db double precision,
  quality_grade text,
  quality_notes text,
  reject_code text,
  reject_message text,
  created_at timestamptz not null default now(),
  probed_at timestamptz,
  constraint dataset_files_ready_has_duration
    check (status <> 'ready' or duration_sec is not null),
  constraint dataset_files_rejected_has_code
    check (status <> 'rejected' or reject_code is not null)
);
create index if not exists dataset_files_profile_idx on public.dataset_files (profile_id, status);
create index if not exists dataset_files_user_idx on public.dataset_files (user_id);
create index if not exists dataset_files_pending_idx
  on public.dataset_files (created_at) where status = 'pending';

create table if not exists public.training_jobs (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  params jsonb not null default '{}'::jsonb,
  progress jsonb not null default '{}'::jsonb,
  modal_call_id text,
  attempt integer not null default 0 check (attempt >= 0),
  heartbeat_at timestamptz,
  error_code text,
  error_message text,
  -- The quota period this job's reservation was taken from, and what became of it.
  quota_period_start date not null,
  quota_state text not null default 'reserved'
    check (quota_state in ('reserved', 'charged', 'refunded')),
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz
);
create index if not exists training_jobs_user_idx on public.training_jobs (user_id, created_at desc);
create index if not exists training_jobs_profile_idx
  on public.training_jobs (profile_id, created_at desc);
create index if not exists training_jobs_active_idx
  on public.training_jobs (status, heartbeat_at) where status in ('queued', 'running');

create table if not exists public.model_versions (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  training_job_id uuid not null unique references public.training_jobs (id),
  status text not null default 'ready' check (status in ('ready', 'disabled')),
  model_key text not null unique,
  config_key text not null unique,
  size_bytes bigint not null check (size_bytes >= 0),
  metrics jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
create index if not exists model_versions_profile_idx
  on public.model_versions (profile_id, created_at desc);
create index if not exists model_versions_user_idx on public.model_versions (user_id);

do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'voice_profiles_active_model_fk') then
    alter table public.voice_profiles
      add constraint voice_profiles_active_model_fk
      foreign key (active_model_version_id) references public.model_versions (id);
  end if;
end $$;

create table if not exists public.conversion_jobs (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  model_version_id uuid not null references public.model_versions (id),
  status text not null default 'awaiting_upload'
    check (status in ('awaiting_upload', 'queued', 'running', 'succeeded', 'failed', 'canceled')),
  params jsonb not null default '{}'::jsonb,
  input_key text not null unique,
  input_filename text,
  input_size_bytes bigint check (input_size_bytes > 0),
  output_key text unique,
  input_duration_sec double precision check (input_duration_sec >= 0),
  progress jsonb not null default '{}'::jsonb,
  modal_call_id text,
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
  finished_at timestamptz
);
create index if not exists conversion_jobs_user_idx
  on public.conversion_jobs (user_id, created_at desc);
create index if not exists conversion_jobs_profile_idx
  on public.conversion_jobs (profile_id, created_at desc);
create index if not exists conversion_jobs_active_idx on public.conversion_jobs (status, heartbeat_at)
  where status in ('awaiting_upload', 'queued', 'running');

create table if not exists public.usage_counters (
  user_id uuid not null references auth.users (id) on delete cascade,
  kind text not null check (kind in ('training', 'conversion')),
  period_start date not null,
  used integer not null default 0 check (used >= 0),
  updated_at timestamptz not null default now(),
  primary key (user_id, kind)
);

-- Edited by operators from the Supabase dashboard; null means "the default from settings".
create table if not exists public.quota_overrides (
  user_id uuid primary key references auth.users (id) on delete cascade,
  trainings_per_month integer check (trainings_per_month >= 0),
  conversions_per_day integer check (conversions_per_day >= 0),
  note text,
  updated_at timestamptz not null default now()
);

create table if not exists public.processed_events (
  source text not null,
  event_id text not null,
  received_at timestamptz not null default now(),
  primary key (source, event_id)
);
create index if not exists processed_events_received_idx on public.processed_events (received_at);

-- Row level security: a signed-in user may read their own rows and nothing else; nobody
-- writes through the Data API (every write goes through the functions, as the service).
do $$
declare
  t text;
begin
  foreach t in array array['voice_profiles', 'dataset_files', 'training_jobs', 'model_versions',
                           'conversion_jobs', 'usage_counters', 'quota_overrides'] loop
    execute format('alter table public.%I enable row level security', t);
    execute format('drop policy if exists %I on public.%I', t || '_owner_select', t);
    execute format(
      'create policy %I on public.%I for select to authenticated using ((select auth.uid()) = user_id)',
      t || '_owner_select', t);
    execute format('revoke all on table public.%I from anon, authenticated', t);
    execute format('grant select on table public.%I to authenticated', t);
  end loop;
  alter table public.processed_events enable row level security;
  revoke all on table public.processed_events from anon, authenticated;
end $$;

-- Realtime: a browser subscribed with its own JWT receives changes to its own rows (RLS).
do $$
declare
  t text;
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    foreach t in array array['voice_profiles', 'dataset_files', 'training_jobs', 'model_versions',
                             'conversion_jobs'] loop
      if not exists (select 1 from pg_publication_tables
                     where pubname = 'supabase_realtime' and schemaname = 'public'
                       and tablename = t) then
        execute format('alter publication supabase_realtime add table public.%I', t);
      end if;
    end loop;
  end if;
end $$;
