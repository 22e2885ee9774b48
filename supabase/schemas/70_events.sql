-- Storage events: dedupe, deleted objects, and what became of each event for operators.

set check_function_bodies = off;

-- Idempotency keys for at-least-once deliveries: true the first time a key is seen.
create or replace function public.record_event(p_source text, p_event_id text)
returns jsonb language plpgsql security definer set search_path = '' as $$
begin
  insert into public.processed_events (source, event_id) values (p_source, p_event_id)
  on conflict do nothing;
  return jsonb_build_object('new', found);
end $$;

create or replace function public.event_seen(p_source text, p_event_id text)
returns jsonb language sql stable security definer set search_path = '' as $$
  select jsonb_build_object('seen', exists (
    select 1 from public.processed_events where source = p_source and event_id = p_event_id))
$$;

-- An object deleted from the bucket: its row, if still live, becomes deleted, and its profile's
-- singer check is refreshed.
create or replace function public.mark_object_deleted(
  p_object_key text, p_min_similarity double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile_id uuid;
  v_count integer := 0;
begin
  select profile_id into v_profile_id from public.dataset_files
   where object_key = p_object_key and status <> 'deleted' limit 1;
  if v_profile_id is not null then
    perform 1 from public.voice_profiles where id = v_profile_id for update;
    with d as (
      update public.dataset_files set status = 'deleted'
       where object_key = p_object_key and status <> 'deleted'
      returning id
    )
    select count(*) into v_count from d;
    perform svc_private.refresh_singer_check(v_profile_id, p_min_similarity);
  end if;
  return jsonb_build_object('deleted', v_count);
end $$;

-- Counts one event outcome (the event handler and the reconciler call it).
create or replace function public.record_event_outcome(
  p_source text, p_outcome text, p_reason text default null, p_key text default null
) returns jsonb language sql security definer set search_path = '' as $$
  insert into ops.event_outcomes as e (day, source, outcome, reason, count, last_key, last_at)
  values ((now() at time zone 'UTC')::date, left(p_source, 40), left(p_outcome, 40),
          left(coalesce(p_reason, ''), 200), 1, left(p_key, 1024), now())
  on conflict (day, source, outcome, reason) do update
     set count = e.count + 1, last_key = excluded.last_key, last_at = excluded.last_at
  returning jsonb_build_object('count', e.count)
$$;
