-- The tables of `public`, each with its constraints, indexes, row level security, grants and
-- realtime publication. The operators' tables live with the operators (80_operators.sql).
--
-- Row level security on every table: a signed-in user may read their own rows of the tables
-- that grant `authenticated` a select, and nothing else; nobody writes through the Data API
-- (every write goes through the functions, as the service). Supabase's default privileges
-- grant every new table to anon and authenticated, hence the `revoke all` after each table.
--
-- Columns keep the order the migrations gave them (a column added later comes last), so a
-- database built from these files is the one the migrations build, column for column.

-- Voice profiles ---------------------------------------------------------------------------

create table public.voice_profiles (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  name text not null check (char_length(btrim(name)) between 1 and 80),
  status text not null default 'draft' check (status in ('draft', 'ready', 'disabled')),
  active_model_version_id uuid,  -- references model_versions, below
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  -- Why an operator disabled a profile (status 'disabled' with deleted_at null); shown to its
  -- owner in the 403 and in the profile row they can read.
  disabled_reason text
);
create index voice_profiles_user_idx
  on public.voice_profiles (user_id, created_at desc) where deleted_at is null;
create unique index voice_profiles_user_name_key
  on public.voice_profiles (user_id, lower(btrim(name))) where deleted_at is null;
alter table public.voice_profiles enable row level security;
create policy voice_profiles_owner_select on public.voice_profiles
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.voice_profiles from anon, authenticated;
grant select on table public.voice_profiles to authenticated;

-- Dataset files ----------------------------------------------------------------------------

create table public.dataset_files (
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
  -- What the probe measures beyond the basics (voice activity, the noise under the voice,
  -- energy below the voice, graded warnings) and the one-singer check's verdict.
  voice_ratio double precision check (voice_ratio between 0 and 1),
  low_band_ratio double precision check (low_band_ratio between 0 and 1),
  noise_level text check (noise_level in ('clean', 'some', 'noisy')),
  warnings jsonb not null default '[]'::jsonb,
  singer_similarity double precision,
  other_singer boolean,
  -- Probe starts without a verdict; begin_probe rejects the file after too many.
  probe_attempts integer not null default 0 check (probe_attempts >= 0),
  -- When retention removed the object from the bucket.
  object_removed_at timestamptz,
  -- An upload marked as a whole song: the probe checks it as any upload; once it is ready, a
  -- separation job writes its vocal as a new dataset file `derived_from` it, which trains.
  -- The mix itself never trains and never counts toward the dataset's minutes.
  full_mix boolean not null default false,
  derived_from uuid references public.dataset_files (id) on delete cascade,
  constraint dataset_files_ready_has_duration
    check (status <> 'ready' or duration_sec is not null),
  constraint dataset_files_rejected_has_code
    check (status <> 'rejected' or reject_code is not null),
  constraint dataset_files_derived_not_mix
    check (not (full_mix and derived_from is not null))
);
create index dataset_files_profile_idx on public.dataset_files (profile_id, status);
create index dataset_files_user_idx on public.dataset_files (user_id);
create index dataset_files_pending_idx
  on public.dataset_files (created_at) where status = 'pending';
-- One live vocal per mix; a retried separation writes a new one beside the deleted old one.
create unique index dataset_files_derived_from_live_key
  on public.dataset_files (derived_from) where derived_from is not null and status <> 'deleted';
alter table public.dataset_files enable row level security;
create policy dataset_files_owner_select on public.dataset_files
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.dataset_files from anon, authenticated;
grant select on table public.dataset_files to authenticated;

-- Speaker embeddings (Resemblyzer, 256 numbers) per ready file. Kept out of dataset_files so
-- they never travel in API bodies or Realtime payloads; nobody but the service reads them.
create table public.dataset_file_embeddings (
  file_id uuid primary key references public.dataset_files (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  embedding real[] not null check (cardinality(embedding) between 16 and 4096),
  created_at timestamptz not null default now()
);
create index dataset_file_embeddings_profile_idx
  on public.dataset_file_embeddings (profile_id);
alter table public.dataset_file_embeddings enable row level security;
revoke all on table public.dataset_file_embeddings from anon, authenticated;

-- The profile's singer check: asked for (a worker was spawned and has not started yet),
-- running (since when), and asked for again while running (the worker runs once more at
-- its end instead of a second worker being spawned). A stamp older than the caller's stale
-- limit belongs to a worker that died: the next request spawns a fresh one.
create table public.singer_checks (
  profile_id uuid primary key references public.voice_profiles (id) on delete cascade,
  requested_at timestamptz,
  started_at timestamptz,
  again boolean not null default false
);
alter table public.singer_checks enable row level security;
revoke all on table public.singer_checks from anon, authenticated;

-- Jobs -------------------------------------------------------------------------------------
-- Each kind's table has the shared lifecycle columns (svc_private.job_columns) that the job
-- machine (30_job_machine.sql) reads and writes by name; each is declared a job kind in its
-- own file (55_, 60_, 65_).

create table public.training_jobs (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  params jsonb not null default '{}'::jsonb,
  progress jsonb not null default '{}'::jsonb,
  -- The dispatcher's id for the worker call: a Modal FunctionCall id in production,
  -- `local-<pid>` on the local stack. Cancel uses it to reach the worker.
  worker_call_id text,
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
  finished_at timestamptz,
  -- GPU seconds charged from heartbeats (svc_private.charge_gpu).
  gpu_seconds double precision not null default 0,
  -- The F0 of the audio it trained on (median, 5-95 %), which its model version takes over.
  pitch_range jsonb,
  -- When it last entered `queued` (a trigger sets it, 30_job_machine.sql): the reaper
  -- measures a queued job's wait from here, so a requeued or retried job starts afresh.
  queued_at timestamptz not null default now()
);
create index training_jobs_user_idx on public.training_jobs (user_id, created_at desc);
create index training_jobs_profile_idx
  on public.training_jobs (profile_id, created_at desc);
-- A key under `models/` is claimed while its profile trains (unclaimed_object_keys).
create index training_jobs_profile_active_idx
  on public.training_jobs (profile_id) where status in ('queued', 'running');
create index training_jobs_active_idx
  on public.training_jobs (status, heartbeat_at) where status in ('queued', 'running');
alter table public.training_jobs enable row level security;
create policy training_jobs_owner_select on public.training_jobs
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.training_jobs from anon, authenticated;
grant select on table public.training_jobs to authenticated;

create table public.model_versions (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  profile_id uuid not null references public.voice_profiles (id) on delete cascade,
  training_job_id uuid not null unique references public.training_jobs (id),
  status text not null default 'ready' check (status in ('ready', 'disabled')),
  model_key text not null unique,
  config_key text not null unique,
  size_bytes bigint not null check (size_bytes >= 0),
  metrics jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  -- Taken over from its training job as it is inserted (trigger model_version_pitch).
  pitch_range jsonb,
  -- The fork's k-means cluster model beside the weights, and the ratio conversions use when
  -- they do not say (trigger model_version_cluster, 57_timbre_retrieval.sql).
  cluster_key text unique,
  cluster_ratio real not null default 0
    constraint model_versions_cluster_ratio_check check (cluster_ratio >= 0 and cluster_ratio <= 1)
);
create index model_versions_profile_idx
  on public.model_versions (profile_id, created_at desc);
create index model_versions_user_idx on public.model_versions (user_id);
alter table public.model_versions enable row level security;
create policy model_versions_owner_select on public.model_versions
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.model_versions from anon, authenticated;
grant select on table public.model_versions to authenticated;

alter table public.voice_profiles
  add constraint voice_profiles_active_model_fk
  foreign key (active_model_version_id) references public.model_versions (id);

create table public.conversion_jobs (
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
  -- When retention removed its input and results from the bucket.
  files_removed_at timestamptz,
  -- The input's measured pitch range beside the voice's and the suggested shift.
  pitch jsonb,
  -- When it last entered `queued` (a trigger sets it, 30_job_machine.sql): the reaper
  -- measures a queued job's wait from here, so a requeued or retried job starts afresh.
  queued_at timestamptz not null default now()
);
create index conversion_jobs_user_idx
  on public.conversion_jobs (user_id, created_at desc);
create index conversion_jobs_profile_idx
  on public.conversion_jobs (profile_id, created_at desc);
create index conversion_jobs_active_idx on public.conversion_jobs (status, heartbeat_at)
  where status in ('awaiting_upload', 'queued', 'running');
alter table public.conversion_jobs enable row level security;
create policy conversion_jobs_owner_select on public.conversion_jobs
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.conversion_jobs from anon, authenticated;
grant select on table public.conversion_jobs to authenticated;

-- One separation per mix (the unique source makes its creation idempotent). The vocal's
-- dataset file id is fixed when the job is created, so a retried worker writes one key.
create table public.separation_jobs (
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
  finished_at timestamptz,
  -- When it last entered `queued` (a trigger sets it, 30_job_machine.sql): the reaper
  -- measures a queued job's wait from here, so a requeued or retried job starts afresh.
  queued_at timestamptz not null default now()
);
create index separation_jobs_user_idx
  on public.separation_jobs (user_id, created_at desc);
create index separation_jobs_profile_idx
  on public.separation_jobs (profile_id, created_at desc);
create index separation_jobs_active_idx
  on public.separation_jobs (status, heartbeat_at) where status in ('queued', 'running');
alter table public.separation_jobs enable row level security;
create policy separation_jobs_owner_select on public.separation_jobs
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.separation_jobs from anon, authenticated;
grant select on table public.separation_jobs to authenticated;

-- Quotas, spend and rate limits ------------------------------------------------------------

-- The counted quotas a job kind may take a unit of (svc_private.job_kinds.quota): each counts
-- per UTC month or day, and an operator's per-user limit sits in the named column of
-- `quota_overrides` (null: none).
create table svc_private.quotas (
  name text primary key check (name ~ '^[a-z][a-z0-9_]*$'),
  period text not null check (period in ('day', 'month')),
  override_column text
);
revoke all on table svc_private.quotas from public, anon, authenticated;
insert into svc_private.quotas (name, period, override_column)
values ('training', 'month', 'trainings_per_month'), ('conversion', 'day', 'conversions_per_day')
on conflict (name) do nothing;

create table public.usage_counters (
  user_id uuid not null references auth.users (id) on delete cascade,
  kind text not null references svc_private.quotas (name),
  period_start date not null,
  used integer not null default 0 check (used >= 0),
  updated_at timestamptz not null default now(),
  primary key (user_id, kind)
);
alter table public.usage_counters enable row level security;
create policy usage_counters_owner_select on public.usage_counters
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.usage_counters from anon, authenticated;
grant select on table public.usage_counters to authenticated;

-- Edited by operators from the Supabase dashboard; null means "the default from settings".
create table public.quota_overrides (
  user_id uuid primary key references auth.users (id) on delete cascade,
  trainings_per_month integer check (trainings_per_month >= 0),
  conversions_per_day integer check (conversions_per_day >= 0),
  note text,
  updated_at timestamptz not null default now(),
  gpu_seconds_per_month integer check (gpu_seconds_per_month >= 0)
);
alter table public.quota_overrides enable row level security;
create policy quota_overrides_owner_select on public.quota_overrides
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.quota_overrides from anon, authenticated;
-- The operator's note about a user stays with the operator: users read every other column.
grant select (user_id, trainings_per_month, conversions_per_day, gpu_seconds_per_month,
              updated_at)
  on table public.quota_overrides to authenticated;

-- Extra units for one period, granted by an operator on top of the limit.
create table public.quota_grants (
  user_id uuid not null references auth.users (id) on delete cascade,
  kind text not null references svc_private.quotas (name),
  period_start date not null,
  extra integer not null check (extra >= 0),
  updated_at timestamptz not null default now(),
  primary key (user_id, kind, period_start)
);
alter table public.quota_grants enable row level security;
create policy quota_grants_owner_select on public.quota_grants
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.quota_grants from anon, authenticated;
grant select on table public.quota_grants to authenticated;

-- What each user's workers have run this month, whatever became of the jobs.
create table public.gpu_spend (
  user_id uuid primary key references auth.users (id) on delete cascade,
  period_start date not null,
  seconds double precision not null default 0 check (seconds >= 0),
  updated_at timestamptz not null default now()
);
alter table public.gpu_spend enable row level security;
create policy gpu_spend_owner_select on public.gpu_spend
  for select to authenticated using ((select auth.uid()) = user_id);
revoke all on table public.gpu_spend from anon, authenticated;
grant select on table public.gpu_spend to authenticated;

-- One token bucket per subject ('user:<id>' or 'ip:<address>') and action.
create table public.rate_buckets (
  subject text not null,
  action text not null,
  tokens double precision not null,
  updated_at timestamptz not null default clock_timestamp(),
  primary key (subject, action)
);
alter table public.rate_buckets enable row level security;
revoke all on table public.rate_buckets from anon, authenticated;

-- Events and retention ---------------------------------------------------------------------

-- Storage events already handled, so a redelivered one is not handled twice. Only a hash of
-- each id (sha256, hex): an R2 event's id holds its object key, which names the user and a
-- file, and deliveries for a person's keys come after their erasure too.
create table public.processed_events (
  source text not null,
  event_id text not null,
  received_at timestamptz not null default now(),
  primary key (source, event_id),
  constraint processed_events_event_id_hashed check (event_id ~ '^[0-9a-f]{64}$')
);
create index processed_events_received_idx on public.processed_events (received_at);
alter table public.processed_events enable row level security;
revoke all on table public.processed_events from anon, authenticated;

-- Keys waiting to be deleted from the bucket. No foreign keys: the queue outlives the rows
-- (and the account) the keys came from.
create table public.object_deletions (
  object_key text primary key,
  user_id uuid not null,
  reason text not null,
  enqueued_at timestamptz not null default now()
);
create index object_deletions_user_idx on public.object_deletions (user_id);
create index object_deletions_enqueued_idx on public.object_deletions (enqueued_at);
alter table public.object_deletions enable row level security;
revoke all on table public.object_deletions from anon, authenticated;

-- Realtime ---------------------------------------------------------------------------------

-- A browser subscribed with its own JWT receives changes to its own rows (RLS). Hosted
-- Supabase has the publication; a Postgres without it (a plain CI database) goes without.
do $$
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    alter publication supabase_realtime add table public.voice_profiles, public.dataset_files,
      public.training_jobs, public.model_versions, public.conversion_jobs,
      public.separation_jobs;
  end if;
end $$;
