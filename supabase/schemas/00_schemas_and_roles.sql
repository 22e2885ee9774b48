-- Declarative schema: the database as it is now, one concern per file, applied in lexical
-- order onto an empty database that already has what Supabase provides (the `auth` schema,
-- the API roles and their default privileges; pipeline/local/auth_shim.sql for the local
-- stack). `supabase/migrations/` stays the deploy history; tests/test_declarative_schema.py
-- builds a database from each and fails on any difference. How to change the database:
-- docs/architecture.md, "How to change the database".
--
-- This file: the schemas beside `public` and the workers' login.

-- Internal helpers for the state-transition functions. They live in a schema the Data API
-- does not expose and no API role may use.
create schema if not exists svc_private;
revoke all on schema svc_private from public;

-- Operators on the Supabase dashboard: views in their own schema `ops` that each answer one
-- question, an audit table, and safe controls (80_operators.sql). The dashboard (postgres)
-- and the service role may use `ops`; anon and authenticated get nothing.
create schema if not exists ops;
revoke all on schema ops from public, anon, authenticated;
grant usage on schema ops to service_role;

-- The workers' own database login. Training, conversion and probe containers decode hostile
-- audio with native libraries, so the login they hold may execute the few functions a worker
-- calls and nothing else: no table privileges (every row they touch goes through a security
-- definer function), no user-facing function, no maintenance function (90_access.sql lists
-- what it may call). The crons (quota reset, reaper, reconciler, queue pull) are not workers:
-- they refund quotas, expire uploads and handle events for every user, so they keep the
-- service login.
--
-- A role belongs to the cluster, not to one database, hence `if not exists`. Created without
-- a password, so it cannot sign in until an operator gives it one:
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
