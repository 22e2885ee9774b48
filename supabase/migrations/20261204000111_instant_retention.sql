-- Retention for the instant kind (issue 26): an instant conversion's input, output and a
-- song's two parts leave the bucket like a conversion's (a canceled one at once, any other
-- finished one after the conversions' retention); the row stays, saying so. An instant voice's
-- reference stays as long as the voice does: the person keeps the voice to convert with again
-- (and to speak text in), and deleting it, its profile or the account takes the reference
-- (the delete trigger `queue_instant_objects`). Only a voice that never became usable goes by
-- age: rejected, or its reference never uploaded, older than the retention.

set check_function_bodies = off;

create or replace function public.expire_instant_jobs(p_retention_sec integer)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_objects integer := 0;
  v_voices integer := 0;
  r record;
begin
  for r in
    update public.instant_jobs j set files_removed_at = now()
     where j.files_removed_at is null and svc_private.is_terminal(j.status)
       and (j.status = 'canceled'
            or coalesce(j.finished_at, j.created_at)
               < now() - make_interval(secs => p_retention_sec))
    returning j.user_id, j.status,
              array[j.input_key, j.output_key] || svc_private.instant_part_keys(j) as keys
  loop
    v_objects := v_objects + svc_private.enqueue_deletions(r.user_id, r.keys,
      case when r.status = 'canceled' then 'instant_abandoned' else 'instant_expired' end);
  end loop;
  -- the delete trigger queues each reference's key
  with gone as (
    delete from public.instant_voices v
     where (v.status = 'rejected'
            and v.created_at < now() - make_interval(secs => p_retention_sec))
        or (v.status = 'awaiting_upload'
            and coalesce(v.upload_expires_at, v.created_at)
                < now() - make_interval(secs => p_retention_sec))
    returning 1
  )
  select count(*) into v_voices from gone;
  return jsonb_build_object('objects_queued', v_objects, 'voices_deleted', v_voices);
end $$;

select svc_private.restrict_to_service(array['expire_instant_jobs']);
