-- The workers' own database login. Training, conversion and probe containers decode hostile
-- audio with native libraries, so the login they hold may execute the few functions a worker
-- calls and nothing else: no table privileges (every row they touch goes through a security
-- definer function), no user-facing function, no maintenance function. The crons (quota
-- reset, reaper, reconciler, queue pull) are not workers: they refund quotas, expire uploads
-- and handle events for every user, so they keep the service login.
--
-- Created without a password, so it cannot sign in until an operator gives it one:
--   alter role svc_worker with password '…';

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'svc_worker') then
    create role svc_worker login;
  end if;
end $$;

alter role svc_worker with login noinherit nosuperuser nocreatedb nocreaterole nobypassrls
  noreplication;

-- Calling `public.fn(...)` needs usage on the schema; usage grants no table or function.
grant usage on schema public to svc_worker;

-- The model a conversion job converts with, looked up by the job alone: the worker holds a
-- job id, not a user, so it needs no owner-checked (user-facing) lookup.
create or replace function public.conversion_model(p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_model jsonb;
begin
  select to_jsonb(m) into v_model
    from public.conversion_jobs j
    join public.model_versions m on m.id = j.model_version_id
    join public.voice_profiles p on p.id = m.profile_id
   where j.id = p_job_id and p.deleted_at is null;
  if v_model is null then
    perform svc_private.raise_error('NOT_FOUND', 'That model version does not exist.',
                                    jsonb_build_object('job_id', p_job_id));
  end if;
  return v_model;
end $$;

select svc_private.restrict_to_service(array['conversion_model']);

-- Grants execute on every overload of the named public functions to the worker login. A
-- later migration that changes a worker function's arguments creates a new function, which
-- has no grant: it calls this again with that name.
create or replace function svc_private.grant_to_worker(p_names text[])
returns void language plpgsql as $$
declare
  f record;
begin
  for f in
    select p.oid::regprocedure as sig from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'public' and p.proname = any (p_names)
  loop
    execute format('grant execute on function %s to svc_worker', f.sig);
  end loop;
end $$;

revoke all on function svc_private.grant_to_worker(text[]) from public;

-- What the workers call (gpu/train_job.py, gpu/convert_job.py, gpu/errors.py's heartbeat and
-- pipeline/probe.py), and nothing more; tests/test_worker_role.py holds the same list.
select svc_private.grant_to_worker(array[
  'claim_job', 'heartbeat_job', 'fail_job',
  'training_inputs', 'finish_training',
  'conversion_model', 'finish_conversion',
  'get_dataset_file', 'record_probe']);
