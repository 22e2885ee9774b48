-- The events' dedupe table keeps only a hash of each delivery's id (issue: privacy). An R2
-- event's id holds its object key, which names the user and a dataset file's name, and
-- deliveries for a person's keys keep coming after `DELETE /me` (the deletes of their objects
-- are events too), so a raw id outlived the erasure. The service now stores
-- sha256(id) in hex (pipeline/repository.py, `redact.digest`); the rows already here are
-- hashed the same way, so a redelivery of an event seen before the change is still a
-- duplicate. The check keeps a raw id from ever being stored again.
update public.processed_events
   set event_id = encode(sha256(convert_to(event_id, 'UTF8')), 'hex')
 where event_id !~ '^[0-9a-f]{64}$';

alter table public.processed_events drop constraint if exists processed_events_event_id_hashed;
alter table public.processed_events add constraint processed_events_event_id_hashed
  check (event_id ~ '^[0-9a-f]{64}$');

-- The operators' per-day outcome counts keep their last key as `kind:row id` from now on
-- (`redact.key`); the raw keys already there are dropped (a day's last key is a debugging aid).
update ops.event_outcomes set last_key = null where last_key like 'vc/users/%';
