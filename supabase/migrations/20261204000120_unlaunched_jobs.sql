-- A job whose row committed but whose worker was never spawned (issue 28, the fault harness's
-- API killed between the two: the row is written by `start_training` & co. and the spawn is
-- the next call, `pipeline.launch.launch`) sat `queued` with no `worker_call_id` until the
-- reaper failed it NOT_STARTED after `VC_QUEUED_TIMEOUT_SECONDS` (2 h): refunded, but the
-- person waited two hours for nothing. The reaper's cron now takes each such job once it has
-- waited `p_older_than_sec` (longer than a launch takes), marks it `dispatching` so a second
-- run cannot take it again, and launches it as the API would have. A kind that waits in line
-- for a slot (`active_limit = 'in_line'`, the separations) is left to its own queue
-- (`waiting_separations`/`take_separation`). A spawn that did happen but whose call id was
-- never stored is spawned twice: the second worker's claim counts a new attempt and fences
-- the first out (STALE_ATTEMPT), so the job still runs once to its end.
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

select svc_private.restrict_to_service(array['take_unlaunched_jobs']);
