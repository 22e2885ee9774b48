-- The local Realtime stand-in's feed (pipeline/local/realtime.py): every change to a table in
-- the `supabase_realtime` publication is queued as Supabase Realtime would describe it, and a
-- NOTIFY wakes the stand-in, which reads the queue and decides who may see each change.
-- Hosted Supabase reads the same changes from the write-ahead log instead; this file is
-- applied by the local stack only, after the migrations, and is safe to run more than once.

create schema if not exists local_realtime;
revoke all on schema local_realtime from public;

-- A queue rather than the NOTIFY payload itself: NOTIFY carries at most 8000 bytes, and a
-- job row with its progress can be larger. Unlogged: a lost change after a crash is harmless.
create unlogged table if not exists local_realtime.changes (
  id bigint generated always as identity primary key,
  schema_name text not null,
  table_name text not null,
  type text not null,
  record jsonb,
  old_record jsonb,
  columns jsonb not null,
  owner uuid,  -- the row's user_id: who may hear of a delete, whose record is gone
  commit_timestamp timestamptz not null default now()
);
revoke all on table local_realtime.changes from public;

create or replace function local_realtime.capture() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  v_columns jsonb;
begin
  select coalesce(jsonb_agg(jsonb_build_object('name', a.attname, 'type', t.typname)
                            order by a.attnum), '[]'::jsonb)
    into v_columns
    from pg_catalog.pg_attribute a
    join pg_catalog.pg_type t on t.oid = a.atttypid
   where a.attrelid = tg_relid and a.attnum > 0 and not a.attisdropped;
  insert into local_realtime.changes
    (schema_name, table_name, type, record, old_record, columns, owner)
  values (
    tg_table_schema, tg_table_name, tg_op,
    case when tg_op in ('INSERT', 'UPDATE') then pg_catalog.to_jsonb(new) end,
    -- as with the default replica identity, an old record carries only the primary key
    case when tg_op in ('UPDATE', 'DELETE') then jsonb_build_object('id', old.id) end,
    v_columns,
    (case when tg_op = 'DELETE' then pg_catalog.to_jsonb(old) else pg_catalog.to_jsonb(new) end
     ->> 'user_id')::uuid
  );
  perform pg_catalog.pg_notify('local_realtime', '');
  return null;
end $$;

-- One trigger per published table, so the feed follows the publication like Realtime does.
do $$
declare
  t record;
begin
  for t in select schemaname, tablename from pg_catalog.pg_publication_tables
            where pubname = 'supabase_realtime' loop
    execute format('drop trigger if exists local_realtime_capture on %I.%I',
                   t.schemaname, t.tablename);
    execute format('create trigger local_realtime_capture after insert or update or delete '
                   'on %I.%I for each row execute function local_realtime.capture()',
                   t.schemaname, t.tablename);
  end loop;
end $$;
