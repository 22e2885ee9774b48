-- `delete_account` no longer searches the dedupe table and the event log for the user id:
-- since 20261204000130 they hold only a hash of each delivery id and a redacted last key
-- (`kind:row id`), so those two statements could never match; the test that scans every
-- table for an erased person's id (tests/test_privacy.py) holds that nothing names them.

create or replace function public.delete_account(p_user_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_deleted integer;
begin
  if exists (select 1 from public.voice_profiles where user_id = p_user_id) then
    perform svc_private.raise_error('INVALID_TRANSITION',
      'The account still has data; erase it first.', jsonb_build_object('user_id', p_user_id));
  end if;
  delete from public.rate_buckets where subject = 'user:' || p_user_id::text;
  delete from public.object_deletions where user_id = p_user_id;
  delete from ops.audit_log where target_kind = 'user' and target_id = p_user_id;
  delete from auth.users where id = p_user_id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('account_deleted', v_deleted > 0);
end $$;
