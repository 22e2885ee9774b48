-- The upload reconciler's look-ups beyond dataset files (pipeline/reconcile.py).

-- Conversions still awaiting their input after `p_older_than_sec` whose upload link has not
-- expired (the reaper ends those): the reconciler HEADs each input and queues the job as the
-- lost upload event would have. Each person's oldest first, round-robin across people.
create or replace function public.list_stale_conversion_uploads(
  p_older_than_sec integer, p_limit integer
) returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(to_jsonb(c) - 'turn' order by c.turn, c.created_at), '[]'::jsonb)
  from (select j.*, row_number() over (partition by j.user_id order by j.created_at) as turn
          from public.conversion_jobs j
         where j.status = 'awaiting_upload'
           and j.created_at < now() - make_interval(secs => p_older_than_sec)
           and (j.upload_expires_at is null or j.upload_expires_at > now())
         order by turn, j.created_at limit least(greatest(p_limit, 1), 1000)) c
$$;
