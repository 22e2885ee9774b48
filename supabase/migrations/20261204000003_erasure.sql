-- Erasure leaves nothing naming the person (issue 23): `erase_user_data` removes their rows
-- and queues their objects as before; once the objects are gone, `delete_account` (the last
-- step of DELETE /me) removes what still names them outside their own rows — idempotency
-- keys and the operators' event log hold object keys with the user id, rate buckets are
-- keyed by it, operator actions on the account are logged under it — and then the account
-- itself, whose cascade takes usage counters, overrides, grants, the GPU spend and a
-- disabled-account record. It runs last so that an erasure interrupted by a storage outage
-- can be finished by the person's retry (the account still signs in until then).
create or replace function public.delete_account(p_user_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_pattern text := '%' || p_user_id::text || '%';
  v_events integer;
  v_deleted integer;
begin
  if exists (select 1 from public.voice_profiles where user_id = p_user_id) then
    perform svc_private.raise_error('INVALID_TRANSITION',
      'The account still has data; erase it first.', jsonb_build_object('user_id', p_user_id));
  end if;
  delete from public.processed_events where event_id like v_pattern;
  get diagnostics v_events = row_count;
  update ops.event_outcomes set last_key = null where last_key like v_pattern;
  delete from public.rate_buckets where subject = 'user:' || p_user_id::text;
  delete from public.object_deletions where user_id = p_user_id;
  delete from ops.audit_log where target_kind = 'user' and target_id = p_user_id;
  delete from auth.users where id = p_user_id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('account_deleted', v_deleted > 0, 'events_forgotten', v_events);
end $$;

select svc_private.restrict_to_service(array['delete_account']);

-- Was: 20261122000007_operators.sql. A token outlives its account by up to its lifetime: a
-- deleted account is refused as signed out (401), not left to fail on a foreign key.
create or replace function public.require_enabled_user(p_user_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_reason text;
begin
  if not exists (select 1 from auth.users where id = p_user_id) then
    perform svc_private.raise_error('ACCOUNT_DELETED',
      'This account was deleted. Sign in again to start afresh.');
  end if;
  select reason into v_reason from ops.disabled_users where user_id = p_user_id;
  if found then
    perform svc_private.raise_error('USER_DISABLED',
      format('Your account has been disabled by the service: %s', v_reason),
      jsonb_build_object('reason', v_reason));
  end if;
  return jsonb_build_object('enabled', true);
end $$;
