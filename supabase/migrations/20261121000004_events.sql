-- Event handling and upload reconciliation: lookups by id for the (trusted) event handler,
-- deletes by key, expiring uploads that never arrived, and a side-effect-free dedupe check.

create or replace function public.get_dataset_file(p_file_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select to_jsonb(f) from public.dataset_files f where f.id = p_file_id
$$;

create or replace function public.get_job_by_id(p_kind text, p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_job jsonb;
begin
  execute format('select to_jsonb(j) from public.%I j where j.id = $1',
                 svc_private.job_table(p_kind))
    into v_job using p_job_id;
  return v_job;
end $$;

-- An object deleted from the bucket: its row, if still live, becomes deleted.
create or replace function public.mark_object_deleted(p_object_key text)
returns jsonb language sql security definer set search_path = '' as $$
  with d as (
    update public.dataset_files set status = 'deleted'
     where object_key = p_object_key and status <> 'deleted'
    returning id
  )
  select jsonb_build_object('deleted', count(*)) from d
$$;

-- Pending uploads old enough that their event may have been lost.
create or replace function public.list_stale_uploads(p_older_than_sec integer, p_limit integer)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(to_jsonb(f) order by f.created_at), '[]'::jsonb)
  from (select * from public.dataset_files
         where status = 'pending'
           and created_at < now() - make_interval(secs => p_older_than_sec)
         order by created_at limit least(greatest(p_limit, 1), 1000)) f
$$;

-- A pending upload whose object never appeared before its URL expired.
create or replace function public.expire_upload(p_file_id uuid)
returns jsonb language sql security definer set search_path = '' as $$
  update public.dataset_files
     set status = 'rejected', reject_code = 'UPLOAD_EXPIRED', probed_at = now(),
         reject_message = 'The upload did not arrive before its link expired. Please upload it again.'
   where id = p_file_id and status = 'pending'
  returning to_jsonb(dataset_files.*)
$$;

create or replace function public.event_seen(p_source text, p_event_id text)
returns jsonb language sql stable security definer set search_path = '' as $$
  select jsonb_build_object('seen', exists (
    select 1 from public.processed_events where source = p_source and event_id = p_event_id))
$$;

select svc_private.restrict_to_service(array[
  'get_dataset_file', 'get_job_by_id', 'mark_object_deleted', 'list_stale_uploads',
  'expire_upload', 'event_seen']);
