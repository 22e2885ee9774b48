-- Deleting a voice profile ends every live job on it, of every kind, as erasure does
-- (`erase_user_data`): each is canceled through the job machine (its refund rule, its GPU
-- time charged), read from `svc_private.jobs`, so a kind declared later is covered without
-- a change here. It used to refuse while a training or conversion was live (PROFILE_BUSY),
-- cancel separations only, and leave instant and text jobs running on a deleted voice, still
-- spending GPU time and writing results for it. The worker call ids come back, for the API
-- to signal (a worker that misses the signal stops at its next heartbeat). The rows and
-- objects of every kind go when retention purges the profile after its grace period
-- (`purge_profiles`, and the instant and text rows' delete triggers).
set check_function_bodies = off;

create or replace function public.delete_profile(p_user_id uuid, p_profile_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles := svc_private.owned_profile(p_user_id, p_profile_id);
  r record;
  v_job jsonb;
  v_calls jsonb := '[]'::jsonb;
  v_canceled integer := 0;
begin
  perform svc_private.lock_live_jobs(p_user_id, p_profile_id);
  for r in
    select kind, id from svc_private.jobs
     where user_id = p_user_id and profile_id = p_profile_id
       and status in ('awaiting_upload', 'queued', 'running')
     order by kind, id
  loop
    v_job := svc_private.lock_job(r.kind, r.id);
    if not svc_private.is_terminal(v_job ->> 'status') then
      v_job := svc_private.end_job(r.kind, v_job, 'canceled', 'CANCELED',
                                   'Canceled because its voice was deleted.');
      v_canceled := v_canceled + 1;
      if v_job ->> 'worker_call_id' is not null then
        v_calls := v_calls || to_jsonb(v_job ->> 'worker_call_id');
      end if;
    end if;
  end loop;
  update public.dataset_files set status = 'deleted'
   where profile_id = p_profile_id and status <> 'deleted';
  update public.voice_profiles set deleted_at = now(), status = 'disabled', updated_at = now()
   where id = p_profile_id returning * into v_profile;
  return svc_private.profile_json(v_profile)
         || jsonb_build_object('jobs_canceled', v_canceled, 'call_ids', v_calls);
end $$;
