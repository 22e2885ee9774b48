-- Internal helpers for the state-transition functions. They live in a schema the Data API
-- does not expose and no API role may use.

create schema if not exists svc_private;
revoke all on schema svc_private from public;

-- Domain errors: the code is the message (what the Python side switches on), the hint is for
-- a person, the detail is JSON. PostgREST returns the same three fields.
create or replace function svc_private.raise_error(
  p_code text, p_message text, p_details jsonb default '{}'::jsonb
) returns void language plpgsql as $$
begin
  raise exception using errcode = 'P0001', message = p_code, hint = p_message,
    detail = p_details::text;
end $$;

create or replace function svc_private.period_start(p_kind text, p_at timestamptz)
returns date language sql stable as $$
  select case p_kind
    when 'training' then date_trunc('month', p_at at time zone 'UTC')::date
    else (p_at at time zone 'UTC')::date
  end
$$;

create or replace function svc_private.period_end(p_kind text, p_start date)
returns timestamptz language sql stable as $$
  select (case p_kind when 'training' then p_start + interval '1 month'
                      else p_start + interval '1 day' end) at time zone 'UTC'
$$;

create or replace function svc_private.quota_limit(p_user_id uuid, p_kind text, p_default integer)
returns integer language sql stable as $$
  select coalesce(
    (select case p_kind when 'training' then o.trainings_per_month else o.conversions_per_day end
       from public.quota_overrides o where o.user_id = p_user_id),
    p_default)
$$;

create or replace function svc_private.quota_usage(p_user_id uuid, p_kind text, p_default integer)
returns jsonb language sql stable as $$
  with p as (
    select svc_private.period_start(p_kind, now()) as start,
           svc_private.quota_limit(p_user_id, p_kind, p_default) as lim
  ), u as (
    select coalesce((select c.used from public.usage_counters c, p
                      where c.user_id = p_user_id and c.kind = p_kind
                        and c.period_start >= p.start), 0) as used
  )
  select jsonb_build_object(
    'kind', p_kind, 'used', u.used, 'limit', p.lim, 'remaining', greatest(p.lim - u.used, 0),
    'period_start', p.start, 'resets_at', svc_private.period_end(p_kind, p.start))
  from p, u
$$;

-- One conditional update takes a unit: it row-locks the counter, rolls a stale period itself
-- (so a late cron can neither block nor over-grant) and succeeds only while a unit is left.
create or replace function svc_private.reserve_quota(p_user_id uuid, p_kind text, p_default integer)
returns date language plpgsql as $$
declare
  v_period date := svc_private.period_start(p_kind, now());
  v_limit integer := svc_private.quota_limit(p_user_id, p_kind, p_default);
  v_usage jsonb;
begin
  insert into public.usage_counters (user_id, kind, period_start, used)
  values (p_user_id, p_kind, v_period, 0)
  on conflict (user_id, kind) do nothing;

  update public.usage_counters c
     set used = case when c.period_start < v_period then 1 else c.used + 1 end,
         period_start = greatest(c.period_start, v_period),
         updated_at = now()
   where c.user_id = p_user_id and c.kind = p_kind
     and (case when c.period_start < v_period then 0 else c.used end) < v_limit;
  if not found then
    v_usage := svc_private.quota_usage(p_user_id, p_kind, p_default);
    perform svc_private.raise_error('QUOTA_EXCEEDED',
      format('You have used all %s %s %s. More become available at %s UTC.',
             v_limit, p_kind || 's',
             case p_kind when 'training' then 'this month' else 'today' end,
             to_char(svc_private.period_end(p_kind, v_period) at time zone 'UTC',
                     'YYYY-MM-DD HH24:MI')),
      v_usage);
  end if;
  return v_period;
end $$;

-- Gives a unit back to the period it was taken from; a period that has rolled since is left
-- alone, so a refund can never create credit in a new period.
create or replace function svc_private.refund_quota(p_user_id uuid, p_kind text, p_period date)
returns void language sql as $$
  update public.usage_counters
     set used = greatest(used - 1, 0), updated_at = now()
   where user_id = p_user_id and kind = p_kind and period_start = p_period
$$;

create or replace function svc_private.job_table(p_kind text)
returns text language plpgsql immutable as $$
begin
  if p_kind = 'training' then return 'training_jobs'; end if;
  if p_kind = 'conversion' then return 'conversion_jobs'; end if;
  perform svc_private.raise_error('INVALID_ARGUMENT', 'Unknown job kind.',
                                  jsonb_build_object('kind', p_kind));
end $$;

create or replace function svc_private.is_terminal(p_status text)
returns boolean language sql immutable as $$
  select p_status in ('succeeded', 'failed', 'canceled')
$$;

create or replace function svc_private.lock_job(p_kind text, p_job_id uuid)
returns jsonb language plpgsql as $$
declare
  v_job jsonb;
begin
  execute format('select to_jsonb(j) from public.%I j where j.id = $1 for update',
                 svc_private.job_table(p_kind))
    into v_job using p_job_id;
  if v_job is null then
    perform svc_private.raise_error('NOT_FOUND', 'That job does not exist.',
                                    jsonb_build_object('kind', p_kind, 'id', p_job_id));
  end if;
  return v_job;
end $$;

-- Writes the lifecycle columns shared by both job tables from `p_job || p_patch`.
create or replace function svc_private.update_job(p_kind text, p_job jsonb, p_patch jsonb)
returns jsonb language plpgsql as $$
declare
  v_job jsonb;
begin
  execute format(
    'update public.%1$I j
        set status = r.status, progress = r.progress, modal_call_id = r.modal_call_id,
            attempt = r.attempt, heartbeat_at = r.heartbeat_at, error_code = r.error_code,
            error_message = r.error_message, quota_state = r.quota_state,
            started_at = r.started_at, finished_at = r.finished_at
       from jsonb_populate_record(null::public.%1$I, $1) r
      where j.id = r.id
      returning to_jsonb(j)', svc_private.job_table(p_kind))
    into v_job using p_job || p_patch;
  return v_job;
end $$;

-- Ends a non-terminal job as failed or canceled and gives its reservation back.
create or replace function svc_private.end_job(
  p_kind text, p_job jsonb, p_status text, p_code text, p_message text
) returns jsonb language plpgsql as $$
begin
  if p_job ->> 'quota_state' = 'reserved' then
    perform svc_private.refund_quota((p_job ->> 'user_id')::uuid, p_kind,
                                     (p_job ->> 'quota_period_start')::date);
  end if;
  return svc_private.update_job(p_kind, p_job, jsonb_build_object(
    'status', p_status, 'error_code', p_code, 'error_message', p_message,
    'finished_at', now(),
    'quota_state', case when p_job ->> 'quota_state' = 'reserved' then 'refunded'
                        else p_job ->> 'quota_state' end,
    'progress', p_job -> 'progress' || jsonb_build_object('phase', p_status)));
end $$;

create or replace function svc_private.invalid_transition(p_kind text, p_job jsonb, p_to text)
returns void language sql as $$
  select svc_private.raise_error('INVALID_TRANSITION',
    format('A %s job that is %s cannot become %s.', p_kind, p_job ->> 'status', p_to),
    jsonb_build_object('kind', p_kind, 'id', p_job -> 'id', 'status', p_job -> 'status',
                       'to', p_to))
$$;

create or replace function svc_private.owned_profile(p_user_id uuid, p_profile_id uuid)
returns public.voice_profiles language plpgsql as $$
declare
  v_profile public.voice_profiles;
begin
  select * into v_profile from public.voice_profiles
   where id = p_profile_id and user_id = p_user_id and deleted_at is null
   for update;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That voice profile does not exist.',
                                    jsonb_build_object('profile_id', p_profile_id));
  end if;
  return v_profile;
end $$;

create or replace function svc_private.dataset_summary(p_profile_id uuid)
returns jsonb language sql stable as $$
  select jsonb_build_object(
    'ready_files', count(*) filter (where status = 'ready'),
    'pending_files', count(*) filter (where status = 'pending'),
    'rejected_files', count(*) filter (where status = 'rejected'),
    'ready_seconds', coalesce(sum(duration_sec) filter (where status = 'ready'), 0))
  from public.dataset_files where profile_id = p_profile_id
$$;

create or replace function svc_private.profile_json(p_profile public.voice_profiles)
returns jsonb language sql stable as $$
  select to_jsonb(p_profile) || jsonb_build_object(
    'dataset', svc_private.dataset_summary(p_profile.id))
$$;

-- Why a live job counts as abandoned, or null while it is healthy.
create or replace function svc_private.stale_reason(
  p_job jsonb, p_heartbeat_timeout_sec integer, p_queued_timeout_sec integer
) returns text language sql stable as $$
  select case
    when p_job ->> 'status' = 'awaiting_upload'
         and (p_job ->> 'upload_expires_at')::timestamptz < now() then 'UPLOAD_EXPIRED'
    when p_job ->> 'status' = 'queued'
         and (p_job ->> 'created_at')::timestamptz
             < now() - make_interval(secs => p_queued_timeout_sec) then 'NOT_STARTED'
    when p_job ->> 'status' = 'running'
         and coalesce(p_job ->> 'heartbeat_at', p_job ->> 'started_at')::timestamptz
             < now() - make_interval(secs => p_heartbeat_timeout_sec) then 'WORKER_LOST'
  end
$$;

-- Locks the service's functions down: only the service role may execute them (Supabase's
-- default privileges would otherwise grant every new function to anon and authenticated).
create or replace function svc_private.restrict_to_service(p_names text[] default null)
returns void language plpgsql as $$
declare
  f record;
begin
  for f in
    select p.oid::regprocedure as sig from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'public' and p.prosecdef
       and (p_names is null or p.proname = any (p_names))
  loop
    execute format('revoke all on function %s from public, anon, authenticated', f.sig);
    execute format('grant execute on function %s to service_role', f.sig);
  end loop;
  for f in
    select p.oid::regprocedure as sig from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'svc_private'
  loop
    execute format('revoke all on function %s from public, anon, authenticated', f.sig);
  end loop;
end $$;
