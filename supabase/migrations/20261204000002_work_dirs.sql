-- The training work volume holds a person's raw recordings, pieces, features and checkpoints
-- while a training runs. Which of its directories may stay is the database's call: a live
-- training's (it may resume there), and a budget-stopped one's for a grace period (requeued
-- after the budget resets, it resumes from its checkpoints). Everything else — finished,
-- canceled, failed, reaped, or a job erased with its person — goes at the next sweep
-- (`pipeline/work_dirs.py`, run by the retention cron and after every erasure).
create or replace function public.training_work_to_keep(
  p_job_ids jsonb, p_grace_seconds integer
) returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(id), '[]'::jsonb) from public.training_jobs
   where id in (select jsonb_array_elements_text(p_job_ids)::uuid)
     and (status in ('queued', 'running')
          or (status = 'failed' and error_code = 'GPU_BUDGET_EXHAUSTED'
              and finished_at > now() - make_interval(secs => p_grace_seconds)))
$$;

select svc_private.restrict_to_service(array['training_work_to_keep']);
