-- Operators on the Supabase dashboard: views in `ops` that each answer one question, an
-- audit table, and safe controls (disable/enable a user or a profile, fail a stuck job,
-- requeue a failed one once, grant extra quota for this period) that go through the
-- product's own state machine and quota helpers. The dashboard (postgres) and the service
-- role may use `ops` (00_schemas_and_roles.sql); anon and authenticated get nothing.

set check_function_bodies = off;

-- Audit and standing -----------------------------------------------------------------------

-- Who did what to what, when and why: one row per control call, never updated.
create table ops.audit_log (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  actor text not null,
  action text not null,
  -- 'user', 'profile' or a job kind (svc_private.job_kinds)
  target_kind text not null,
  target_id uuid not null,
  reason text not null check (char_length(btrim(reason)) > 0),
  details jsonb not null default '{}'::jsonb
);
create index audit_log_target_idx on ops.audit_log (target_id, at desc);

-- Users an operator has disabled; the API refuses their requests with USER_DISABLED.
create table ops.disabled_users (
  user_id uuid primary key references auth.users (id) on delete cascade,
  reason text not null,
  disabled_at timestamptz not null default now(),
  disabled_by text not null
);

-- What became of each R2 event and each reconciler pass, counted per UTC day: the event
-- handler's outcomes (ignored ones with their reason and the last key seen) live here so an
-- operator can read them.
create table ops.event_outcomes (
  day date not null,
  source text not null,
  outcome text not null,
  reason text not null default '',
  count bigint not null default 0,
  last_key text,
  last_at timestamptz not null default now(),
  primary key (day, source, outcome, reason)
);

-- Controls ---------------------------------------------------------------------------------

create or replace function svc_private.audit(
  p_by text, p_action text, p_target_kind text, p_target_id uuid, p_reason text,
  p_details jsonb default '{}'::jsonb
) returns void language plpgsql as $$
begin
  if p_reason is null or btrim(p_reason) = '' then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'Say why: the reason is kept in the audit log.');
  end if;
  insert into ops.audit_log (actor, action, target_kind, target_id, reason, details)
  values (coalesce(nullif(btrim(p_by), ''), session_user::text), p_action, p_target_kind,
          p_target_id, btrim(p_reason), coalesce(p_details, '{}'::jsonb));
end $$;

-- The API's check on every signed-in request: one indexed lookup, raising USER_DISABLED.
create or replace function public.require_enabled_user(p_user_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_reason text;
begin
  if not exists (select 1 from auth.users where id = p_user_id) then
    perform svc_private.raise_error('ACCOUNT_DELETED',
      'This account was deleted. Sign in again to start afresh.');
  end if;
  select reason into v_reason from ops.disabled_users where user_id = p_user_id;
  if found then
    perform svc_private.raise_error('USER_DISABLED',
      format('Your account has been disabled by the service: %s', v_reason),
      jsonb_build_object('reason', v_reason));
  end if;
  return jsonb_build_object('enabled', true);
end $$;

create or replace function ops.disable_user(p_user_id uuid, p_reason text, p_by text default null)
returns jsonb language plpgsql security definer set search_path = '' as $$
begin
  if not exists (select 1 from auth.users where id = p_user_id) then
    perform svc_private.raise_error('NOT_FOUND', 'No such user.',
                                    jsonb_build_object('user_id', p_user_id));
  end if;
  perform svc_private.audit(p_by, 'disable_user', 'user', p_user_id, p_reason);
  insert into ops.disabled_users (user_id, reason, disabled_by)
  values (p_user_id, btrim(p_reason), coalesce(nullif(btrim(p_by), ''), session_user::text))
  on conflict (user_id) do update
     set reason = excluded.reason, disabled_by = excluded.disabled_by, disabled_at = now();
  return jsonb_build_object('user_id', p_user_id, 'disabled', true, 'reason', btrim(p_reason));
end $$;

create or replace function ops.enable_user(p_user_id uuid, p_reason text, p_by text default null)
returns jsonb language plpgsql security definer set search_path = '' as $$
begin
  perform svc_private.audit(p_by, 'enable_user', 'user', p_user_id, p_reason);
  delete from ops.disabled_users where user_id = p_user_id;
  if not found then
    perform svc_private.raise_error('INVALID_TRANSITION', 'That user is not disabled.',
                                    jsonb_build_object('user_id', p_user_id));
  end if;
  return jsonb_build_object('user_id', p_user_id, 'disabled', false);
end $$;

create or replace function ops.disable_profile(
  p_profile_id uuid, p_reason text, p_by text default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles;
begin
  perform svc_private.audit(p_by, 'disable_profile', 'profile', p_profile_id, p_reason);
  update public.voice_profiles
     set status = 'disabled', disabled_reason = btrim(p_reason), updated_at = now()
   where id = p_profile_id and deleted_at is null and status <> 'disabled'
  returning * into v_profile;
  if not found then
    perform svc_private.raise_error('INVALID_TRANSITION',
      'That profile does not exist, is deleted, or is already disabled.',
      jsonb_build_object('profile_id', p_profile_id));
  end if;
  return to_jsonb(v_profile);
end $$;

-- Back to what the profile was: ready when it has an active model, else draft.
create or replace function ops.enable_profile(
  p_profile_id uuid, p_reason text, p_by text default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles;
begin
  perform svc_private.audit(p_by, 'enable_profile', 'profile', p_profile_id, p_reason);
  update public.voice_profiles
     set status = case when active_model_version_id is null then 'draft' else 'ready' end,
         disabled_reason = null, updated_at = now()
   where id = p_profile_id and deleted_at is null and status = 'disabled'
  returning * into v_profile;
  if not found then
    perform svc_private.raise_error('INVALID_TRANSITION', 'That profile is not disabled.',
                                    jsonb_build_object('profile_id', p_profile_id));
  end if;
  return to_jsonb(v_profile);
end $$;

-- A live job ends as failed with OPERATOR_FAILED and the reason, its reservation refunded
-- exactly as any failure (svc_private.end_job); its worker stops at its next heartbeat. The
-- heartbeat is taken as now first, so where GPU time is charged from heartbeats the user is
-- not billed for the time a stuck worker was silent.
create or replace function ops.fail_job(
  p_kind text, p_job_id uuid, p_reason text, p_by text default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    perform svc_private.invalid_transition(p_kind, v_job, 'failed');
  end if;
  perform svc_private.audit(p_by, 'fail_job', p_kind, p_job_id, p_reason,
                            jsonb_build_object('was', v_job ->> 'status'));
  return svc_private.end_job(p_kind, v_job || jsonb_build_object('heartbeat_at', now()),
    'failed', 'OPERATOR_FAILED',
    format('Stopped by the service: %s Your quota was refunded.', btrim(p_reason)));
end $$;

-- failed → queued, once per job, and the cron launches it (take_requeued_jobs). A kind with a
-- quota takes a new reservation in the current period (the failure refunded the old one; an
-- operator's requeue is not held to the limit); a 'refuse' kind keeps its one-live-job-per-user
-- rule; the kind's own step (`on_requeue`, e.g. a separation's song must still be there) runs.
create or replace function ops.requeue_job(
  p_kind text, p_job_id uuid, p_reason text, p_by text default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
  v_kind svc_private.job_kinds := svc_private.job_kind(p_kind);
  v_user uuid := (v_job ->> 'user_id')::uuid;
  v_period date;
  v_patch jsonb := jsonb_build_object('worker_call_id', 'requeued',
    'progress', jsonb_build_object('phase', 'queued', 'requeued', true));
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
  if v_kind.quota is not null then
    v_period := svc_private.reserve_quota(v_user, v_kind.quota, 2147483647);
    v_patch := v_patch || jsonb_build_object('quota_state', 'reserved');
  end if;
  if v_kind.active_limit = 'refuse' then
    if svc_private.live_jobs(p_kind, v_user) > 0 then
      perform svc_private.raise_error(upper(p_kind) || '_IN_PROGRESS',
        format('That user already has a %s in progress.', p_kind),
        jsonb_build_object('user_id', v_user));
    end if;
  end if;
  perform svc_private.audit(p_by, 'requeue_job', p_kind, p_job_id, p_reason,
    jsonb_build_object('error_code', v_job ->> 'error_code'));
  if v_period is not null then
    execute format('update %s set quota_period_start = $1 where id = $2',
                   svc_private.job_table(p_kind)) using v_period, p_job_id;
  end if;
  return svc_private.requeue(p_kind, v_job, v_patch);
end $$;

-- Adds p_extra units on top of the user's limit for the current period only.
create or replace function ops.grant_quota(
  p_user_id uuid, p_kind text, p_extra integer, p_reason text, p_by text default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_period date;
begin
  if not exists (select 1 from svc_private.quotas q where q.name = p_kind)
     or p_extra is null or p_extra <= 0 then
    perform svc_private.raise_error('INVALID_ARGUMENT',
      'Grant a positive number of trainings or conversions.',
      jsonb_build_object('kind', p_kind, 'extra', p_extra));
  end if;
  if not exists (select 1 from auth.users where id = p_user_id) then
    perform svc_private.raise_error('NOT_FOUND', 'No such user.',
                                    jsonb_build_object('user_id', p_user_id));
  end if;
  v_period := svc_private.period_start(p_kind, now());
  perform svc_private.audit(p_by, 'grant_quota', 'user', p_user_id, p_reason,
    jsonb_build_object('kind', p_kind, 'extra', p_extra, 'period_start', v_period));
  insert into public.quota_grants as g (user_id, kind, period_start, extra)
  values (p_user_id, p_kind, v_period, p_extra)
  on conflict (user_id, kind, period_start) do update
     set extra = g.extra + excluded.extra, updated_at = now();
  return (select jsonb_build_object('user_id', g.user_id, 'kind', g.kind,
                                    'period_start', g.period_start, 'extra', g.extra)
            from public.quota_grants g
           where g.user_id = p_user_id and g.kind = p_kind and g.period_start = v_period);
end $$;

-- Views: one question each ------------------------------------------------------------------

-- What is running or waiting right now (jobs of every kind: svc_private.jobs), and how long
-- since each worker was heard from?
create or replace view ops.jobs_in_flight as
select j.kind, j.id, j.user_id, u.email, j.profile_id, j.status,
       j.progress ->> 'phase' as phase, (j.progress ->> 'percent')::double precision as percent,
       j.attempt, j.worker_call_id, j.created_at, j.started_at, j.heartbeat_at,
       now() - coalesce(j.heartbeat_at, j.started_at) as heartbeat_age,
       now() - j.created_at as age
  from svc_private.jobs j left join auth.users u on u.id = j.user_id
 where j.status in ('awaiting_upload', 'queued', 'running');

-- Why do jobs (of every kind) fail and uploads get rejected, over the last day and week?
create or replace view ops.failures as
with ended as (
  select kind as source, status, error_code as code, error_message as message,
         finished_at as at
    from svc_private.jobs
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

-- Who uses what this period: counted units, limits set by operators, GPU seconds this month
-- and bytes stored. Periods are spelled out rather than taken from svc_private, which the
-- service role reading the view may not execute. The month's GPU seconds count every job
-- kind's (svc_private.jobs).
create or replace view ops.usage_this_period as
with t as (
  select user_id,
         count(*) filter (where created_at >= date_trunc('month', now() at time zone 'UTC')
                                               at time zone 'UTC') as trainings_this_month
    from public.training_jobs group by user_id
), c as (
  select user_id,
         count(*) filter (where created_at >= (now() at time zone 'UTC')::date
                                                at time zone 'UTC') as conversions_today,
         coalesce(sum(input_size_bytes), 0) as conversion_input_bytes
    from public.conversion_jobs group by user_id
), s as (
  select user_id,
         sum(gpu_seconds) filter (where created_at >= date_trunc('month', now() at time zone 'UTC')
                                                      at time zone 'UTC') as gpu_seconds
    from svc_private.jobs group by user_id
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
       coalesce(s.gpu_seconds, 0) as gpu_seconds_this_month,
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

-- Are uploads waiting on events that never came? Pending uploads by age.
create or replace view ops.pending_uploads as
select case
         when now() - created_at < interval '5 minutes' then '1: under 5 minutes'
         when now() - created_at < interval '1 hour' then '2: 5 to 60 minutes'
         when now() - created_at < interval '1 day' then '3: 1 to 24 hours'
         else '4: over a day'
       end as age,
       count(*) as files, min(created_at) as oldest, count(distinct user_id) as users
  from public.dataset_files
 where status = 'pending'
 group by 1;

-- Is the event path healthy? Handled, duplicate, ignored (with the reason and the last key)
-- events and the reconciler's catches, per day for the last week.
create or replace view ops.event_health as
select day, source, outcome, nullif(reason, '') as reason, count, last_key, last_at
  from ops.event_outcomes
 where day > (now() at time zone 'UTC')::date - 7;

-- Which model versions does each profile have, which is active, and how good are they?
create or replace view ops.model_versions as
select p.id as profile_id, p.name as profile_name, p.status as profile_status, p.user_id,
       u.email, m.id as model_version_id, m.created_at, m.status,
       (p.active_model_version_id = m.id) as active, m.size_bytes, m.metrics,
       j.params ->> 'preset' as preset, j.finished_at - j.started_at as training_time
  from public.model_versions m
  join public.voice_profiles p on p.id = m.profile_id
  left join public.training_jobs j on j.id = m.training_job_id
  left join auth.users u on u.id = m.user_id;

-- Who is disabled right now, and why?
create or replace view ops.disabled as
select 'user'::text as kind, d.user_id as id, d.user_id, u.email, d.reason, d.disabled_at,
       d.disabled_by
  from ops.disabled_users d left join auth.users u on u.id = d.user_id
union all
select 'profile', p.id, p.user_id, u.email, p.disabled_reason, p.updated_at,
       (select a.actor from ops.audit_log a
         where a.target_id = p.id and a.action = 'disable_profile' order by a.at desc limit 1)
  from public.voice_profiles p left join auth.users u on u.id = p.user_id
 where p.status = 'disabled' and p.deleted_at is null;

-- What have operators done lately?
create or replace view ops.recent_actions as
select a.at, a.actor, a.action, a.target_kind, a.target_id, a.reason, a.details
  from ops.audit_log a
 where a.at > now() - interval '30 days';

-- The operators' tables and views: the service role reads them; nobody else. (The controls'
-- execute grants are in 90_access.sql, with every other function's.)
revoke all on all tables in schema ops from public, anon, authenticated;
grant select on all tables in schema ops to service_role;
