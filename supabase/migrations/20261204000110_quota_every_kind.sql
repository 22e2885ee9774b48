-- /quota lists every counted quota (svc_private.quotas), not only trainings and conversions:
-- the instant and text kinds' counts were missing, and the next kind's would be too. The
-- service passes each quota's default limit (its setting) in one jsonb map; a quota the map
-- does not name is left out rather than shown with a made-up limit. The old keys
-- `training` and `conversion` stay at the top for the page and older clients.

set check_function_bodies = off;

drop function if exists public.quota_status(uuid, integer, integer, integer);

-- A user's counted quotas, each under its name in `quotas` (every quota declared in
-- `svc_private.quotas` whose default the service passes in p_limits), trainings and
-- conversions also at the top as before, and beside them the GPU budget.
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

select svc_private.restrict_to_service(array['quota_status']);
