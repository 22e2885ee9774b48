-- Counted quotas (declared in `svc_private.quotas`: trainings a month, conversions a day) with
-- operators' overrides and grants, the monthly GPU-seconds budget charged from heartbeats, and
-- token-bucket rate limits.

set check_function_bodies = off;

-- `p_kind` names a quota (svc_private.quotas); its period is a UTC month or day.
create or replace function svc_private.period_start(p_kind text, p_at timestamptz)
returns date language sql stable as $$
  select case (select q.period from svc_private.quotas q where q.name = p_kind)
    when 'month' then date_trunc('month', p_at at time zone 'UTC')::date
    else (p_at at time zone 'UTC')::date
  end
$$;

create or replace function svc_private.period_end(p_kind text, p_start date)
returns timestamptz language sql stable as $$
  select (case (select q.period from svc_private.quotas q where q.name = p_kind)
            when 'month' then p_start + interval '1 month'
            else p_start + interval '1 day' end) at time zone 'UTC'
$$;

-- A user's limit for a quota: their override (the quota's column of `quota_overrides`) or the
-- default, plus an operator's grant for the current period.
create or replace function svc_private.quota_limit(p_user_id uuid, p_kind text, p_default integer)
returns integer language sql stable as $$
  select coalesce(
    (select (to_jsonb(o) ->> q.override_column)::integer
       from public.quota_overrides o, svc_private.quotas q
      where o.user_id = p_user_id and q.name = p_kind),
    p_default)
  + coalesce((select g.extra from public.quota_grants g
               where g.user_id = p_user_id and g.kind = p_kind
                 and g.period_start = svc_private.period_start(p_kind, now())), 0)
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
             case (select q.period from svc_private.quotas q where q.name = p_kind)
               when 'month' then 'this month' else 'today' end,
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

create or replace function svc_private.gpu_limit(p_user_id uuid, p_default integer)
returns integer language sql stable as $$
  select coalesce((select o.gpu_seconds_per_month from public.quota_overrides o
                    where o.user_id = p_user_id), p_default)
$$;

create or replace function svc_private.gpu_usage(p_user_id uuid, p_default integer)
returns jsonb language sql stable as $$
  with p as (
    select svc_private.period_start('training', now()) as start,
           svc_private.gpu_limit(p_user_id, p_default) as lim
  ), u as (
    select coalesce((select s.seconds from public.gpu_spend s, p
                      where s.user_id = p_user_id and s.period_start >= p.start), 0) as used
  )
  select jsonb_build_object(
    'used_seconds', round(u.used::numeric, 1), 'limit_seconds', p.lim,
    'remaining_seconds', case when p.lim is null then null
                              else round(greatest(p.lim - u.used, 0)::numeric, 1) end,
    'period_start', p.start, 'resets_at', svc_private.period_end('training', p.start))
  from p, u
$$;

-- Charges a running job for the time since its last heartbeat (a retried worker's claim
-- resets the heartbeat, so time a dead worker was gone is never charged). Returns the seconds
-- the user has spent this month; null for a kind outside the budget (its job alone records
-- the time).
create or replace function svc_private.charge_gpu(p_kind text, p_job jsonb)
returns double precision language plpgsql as $$
declare
  v_user uuid := (p_job ->> 'user_id')::uuid;
  v_period date := svc_private.period_start('training', now());
  v_delta double precision := 0;
  v_spent double precision;
begin
  if p_job ->> 'status' = 'running'
     or (p_job ->> 'status' = 'failed' and p_job ->> 'error_code' = 'WORKER_LOST') then
    v_delta := greatest(extract(epoch from now() - coalesce(
      (p_job ->> 'heartbeat_at')::timestamptz, (p_job ->> 'started_at')::timestamptz, now())), 0);
  end if;
  if v_delta > 0 then
    execute format('update %s set gpu_seconds = gpu_seconds + $1 where id = $2',
                   svc_private.job_table(p_kind))
      using v_delta, (p_job ->> 'id')::uuid;
  end if;
  if (svc_private.job_kind(p_kind)).budget = 'free' then
    return null;
  end if;
  insert into public.gpu_spend as s (user_id, period_start, seconds)
  values (v_user, v_period, v_delta)
  on conflict (user_id) do update
     set seconds = case when s.period_start < v_period then excluded.seconds
                        else s.seconds + excluded.seconds end,
         period_start = greatest(s.period_start, v_period),
         updated_at = now()
  returning seconds into v_spent;
  return v_spent;
end $$;

create or replace function svc_private.require_gpu_budget(p_user_id uuid, p_default integer)
returns void language plpgsql as $$
declare
  v_usage jsonb := svc_private.gpu_usage(p_user_id, p_default);
begin
  if v_usage ->> 'limit_seconds' is not null
     and (v_usage ->> 'remaining_seconds')::double precision <= 0 then
    perform svc_private.raise_error('GPU_BUDGET_EXHAUSTED',
      format('You have used this month''s %s minutes of GPU time. More become available at %s UTC.',
             round((v_usage ->> 'limit_seconds')::numeric / 60, 1),
             to_char((v_usage ->> 'resets_at')::timestamptz at time zone 'UTC',
                     'YYYY-MM-DD HH24:MI')),
      v_usage);
  end if;
end $$;

-- A user's counted quotas and, beside them, the GPU budget.
create or replace function public.quota_status(
  p_user_id uuid, p_limits jsonb, p_gpu_seconds_per_month integer default null
) returns jsonb language sql stable security definer set search_path = '' as $$
  with counted as (
    select q.name, svc_private.quota_usage(p_user_id, q.name, (p_limits ->> q.name)::integer)
             as usage
      from svc_private.quotas q
     where jsonb_typeof(p_limits -> q.name) = 'number'
  )
  select jsonb_build_object(
    'training', (select c.usage from counted c where c.name = 'training'),
    'conversion', (select c.usage from counted c where c.name = 'conversion'),
    'quotas', coalesce((select jsonb_object_agg(c.name, c.usage) from counted c), '{}'::jsonb),
    'gpu', svc_private.gpu_usage(p_user_id, p_gpu_seconds_per_month))
$$;

-- The cron's period reset. Counters only ever move forward, so a late or repeated run is
-- harmless: reservations already taken in the new period are left as they are.
create or replace function public.reset_quota_periods(p_now timestamptz default now())
returns jsonb language sql security definer set search_path = '' as $$
  with rolled as (
    update public.usage_counters c
       set used = 0, period_start = svc_private.period_start(c.kind, p_now), updated_at = now()
     where c.period_start < svc_private.period_start(c.kind, p_now)
    returning c.kind
  )
  select coalesce(jsonb_object_agg(q.name, (select count(*) from rolled r
                                               where r.kind = q.name)), '{}'::jsonb)
  from svc_private.quotas q
$$;

-- Takes one token if the bucket (refilled at p_per_minute, holding at most p_burst) has one,
-- in a single upsert, so concurrent API containers share the bucket exactly. Returns whether
-- it was taken and, if not, how many seconds until one will be.
create or replace function public.take_rate_token(
  p_subject text, p_action text, p_burst integer, p_per_minute double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_now timestamptz := clock_timestamp();
  v_rate double precision := greatest(p_per_minute, 0) / 60.0;
  v_tokens double precision;
begin
  insert into public.rate_buckets as b (subject, action, tokens, updated_at)
  values (p_subject, p_action, p_burst - 1, v_now)
  on conflict (subject, action) do update
     set tokens = least(p_burst::double precision,
                        b.tokens + extract(epoch from v_now - b.updated_at) * v_rate) - 1,
         updated_at = v_now
   where least(p_burst::double precision,
               b.tokens + extract(epoch from v_now - b.updated_at) * v_rate) >= 1
  returning tokens into v_tokens;
  if found and p_burst >= 1 then
    return jsonb_build_object('allowed', true, 'remaining', floor(v_tokens));
  end if;
  select least(p_burst::double precision,
               b.tokens + extract(epoch from v_now - b.updated_at) * v_rate)
    into v_tokens from public.rate_buckets b where b.subject = p_subject and b.action = p_action;
  return jsonb_build_object(
    'allowed', false, 'remaining', 0,
    'retry_after', case when v_rate > 0 then ceil((1 - coalesce(v_tokens, 0)) / v_rate)
                        else 3600 end);
end $$;

-- Buckets untouched for a day are full again; the cron may drop them.
create or replace function public.prune_rate_buckets(p_older_than_sec integer default 86400)
returns jsonb language sql security definer set search_path = '' as $$
  with d as (
    delete from public.rate_buckets
     where updated_at < now() - make_interval(secs => p_older_than_sec)
    returning 1
  )
  select jsonb_build_object('deleted', count(*)) from d
$$;

-- One row: the monthly GPU seconds of a user without an override. The service publishes its
-- setting here (`set_gpu_budget`, on every reaper tick), so the heartbeat, which the worker
-- login calls, needs nothing from the worker. Seeded with the setting's default.
create table if not exists svc_private.gpu_budget (
  only_row boolean primary key default true check (only_row),
  seconds_per_month integer not null check (seconds_per_month >= 0),
  updated_at timestamptz not null default now()
);
insert into svc_private.gpu_budget (seconds_per_month) values (8 * 3600)
on conflict (only_row) do nothing;
revoke all on table svc_private.gpu_budget from public, anon, authenticated;

create or replace function public.set_gpu_budget(p_gpu_seconds_per_month integer)
returns jsonb language plpgsql security definer set search_path = '' as $$
begin
  if p_gpu_seconds_per_month is null or p_gpu_seconds_per_month < 0 then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The GPU budget must be 0 or more seconds.',
      jsonb_build_object('gpu_seconds_per_month', p_gpu_seconds_per_month));
  end if;
  insert into svc_private.gpu_budget (seconds_per_month) values (p_gpu_seconds_per_month)
  on conflict (only_row) do update
     set seconds_per_month = excluded.seconds_per_month, updated_at = now()
   where svc_private.gpu_budget.seconds_per_month is distinct from excluded.seconds_per_month;
  return jsonb_build_object('gpu_seconds_per_month', p_gpu_seconds_per_month);
end $$;

-- The user's monthly limit as the server knows it: their override, else the published default.
create or replace function svc_private.server_gpu_limit(p_user_id uuid)
returns integer language sql stable as $$
  select svc_private.gpu_limit(p_user_id,
                               (select b.seconds_per_month from svc_private.gpu_budget b))
$$;
