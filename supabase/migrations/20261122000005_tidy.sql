-- `modal_call_id` becomes `worker_call_id`: the dispatcher's id for the worker call, a Modal
-- FunctionCall id in production and `local-<pid>` on the local stack. Cancel uses it to reach
-- the worker. Every function that names the column is re-created below.

do $$
declare
  t text;
begin
  foreach t in array array['training_jobs', 'conversion_jobs'] loop
    if exists (select 1 from information_schema.columns
                where table_schema = 'public' and table_name = t
                  and column_name = 'modal_call_id') then
      execute format('alter table public.%I rename column modal_call_id to worker_call_id', t);
    end if;
  end loop;
end $$;

-- Writes the lifecycle columns shared by both job tables from `p_job || p_patch`.
create or replace function svc_private.update_job(p_kind text, p_job jsonb, p_patch jsonb)
returns jsonb language plpgsql as $$
declare
  v_job jsonb;
begin
  execute format(
    'update public.%1$I j
        set status = r.status, progress = r.progress, worker_call_id = r.worker_call_id,
            attempt = r.attempt, heartbeat_at = r.heartbeat_at, error_code = r.error_code,
            error_message = r.error_message, quota_state = r.quota_state,
            started_at = r.started_at, finished_at = r.finished_at
       from jsonb_populate_record(null::public.%1$I, $1) r
      where j.id = r.id
      returning to_jsonb(j)', svc_private.job_table(p_kind))
    into v_job using p_job || p_patch;
  return v_job;
end $$;

create or replace function public.set_job_call_id(p_kind text, p_job_id uuid, p_call_id text)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job(p_kind, p_job_id);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  return svc_private.update_job(p_kind, v_job, jsonb_build_object('worker_call_id', p_call_id));
end $$;

select svc_private.restrict_to_service(array['set_job_call_id']);
