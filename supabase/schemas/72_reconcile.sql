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

-- Queued jobs whose worker was never spawned (the API killed between committing the row and
-- the spawn), queued longer than `p_older_than_sec`: the reaper's cron takes each once
-- (marking it `dispatching`) and launches it as the API would have. Kinds that wait in line
-- for a slot (`active_limit = 'in_line'`) have their own queue.
create or replace function public.take_unlaunched_jobs(
  p_older_than_sec integer, p_limit integer default 50
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_taken jsonb := '[]'::jsonb;
  v_rows integer;
  r record;
begin
  for r in
    select j.kind, j.id from svc_private.jobs j
      join svc_private.job_kinds k on k.kind = j.kind
     where j.status = 'queued' and j.worker_call_id is null and k.active_limit <> 'in_line'
       and j.queued_at < now() - make_interval(secs => greatest(p_older_than_sec, 0))
     order by j.queued_at, j.kind, j.id
     limit least(greatest(p_limit, 1), 500)
  loop
    execute format('update %s set worker_call_id = ''dispatching''
                     where id = $1 and status = ''queued'' and worker_call_id is null',
                   svc_private.job_table(r.kind)) using r.id;
    get diagnostics v_rows = row_count;  -- `execute` leaves FOUND as it was
    if v_rows > 0 then
      v_taken := v_taken || jsonb_build_object('kind', r.kind, 'id', r.id);
    end if;
  end loop;
  return v_taken;
end $$;
