-- Who may call what. Every function of `public` and `ops` is a security definer with an
-- empty search_path; only the service role may execute it (Supabase's default privileges
-- would otherwise grant every new function to anon and authenticated), and the workers'
-- login (00_schemas_and_roles.sql) only the few listed below. Nothing in `svc_private` is
-- callable by an API role. Last in the order so that it covers every function the files
-- above define: a new function needs no grant of its own, a new worker function needs its
-- name below.

set check_function_bodies = off;

-- Locks the service's functions down: only the service role may execute them.
create or replace function svc_private.restrict_to_service(p_names text[] default null)
returns void language plpgsql as $$
declare
  f record;
begin
  for f in
    select p.oid::regprocedure as sig from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'public' and p.prosecdef
       and (p_names is null or p.proname = any (p_names))
  loop
    execute format('revoke all on function %s from public, anon, authenticated', f.sig);
    execute format('grant execute on function %s to service_role', f.sig);
  end loop;
  for f in
    select p.oid::regprocedure as sig from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'svc_private'
  loop
    execute format('revoke all on function %s from public, anon, authenticated', f.sig);
  end loop;
end $$;

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

select svc_private.restrict_to_service();

-- The operators' controls: the dashboard (postgres, their owner) and the service role.
revoke all on all functions in schema ops from public, anon, authenticated;
grant execute on all functions in schema ops to service_role;

-- What the workers call (gpu/, pipeline/probe.py, pipeline/singer_check.py,
-- pipeline/separation.py), and nothing more; tests/test_worker_role.py holds the same list.
select svc_private.grant_to_worker(array[
  -- every job kind: the job machine (30_job_machine.sql)
  'claim_job', 'heartbeat_job', 'fail_job', 'set_job_call_id',
  -- training
  'training_inputs', 'record_training_pitch', 'finish_training',
  -- conversion
  'conversion_model', 'record_conversion_pitch', 'finish_conversion',
  -- probe and singer check
  'get_dataset_file', 'begin_probe', 'record_probe', 'request_singer_check',
  'begin_singer_check', 'singer_check_files', 'record_singer_embedding', 'finish_singer_check',
  -- separation
  'take_separation', 'separation_source', 'register_separated_vocal', 'finish_separation',
  -- instant voice (67_instant.sql): the reference's check and the instant conversion
  'get_instant_voice_by_id', 'record_instant_reference', 'instant_job_voice',
  'finish_instant_job',
  -- text in a voice (68_text.sql)
  'text_voice', 'finish_text']);
