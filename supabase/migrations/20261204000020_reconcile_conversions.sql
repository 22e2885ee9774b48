-- The reconciler covers conversion inputs too (issue 28, found by the fault harness with the
-- relay stopped): a conversion whose upload notification never came waited in
-- `awaiting_upload` with its input in the bucket until the reaper canceled it when its link
-- expired. The reconciler now lists those still waiting after `p_older_than_sec` and whose
-- link has not expired (the reaper ends the others), each person's oldest first, taken
-- round-robin across people as `list_stale_uploads` does; it checks each input with a HEAD
-- and queues the job as the event would have (`queue_conversion`).
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

select svc_private.restrict_to_service(array['list_stale_conversion_uploads']);
