-- Helpers every other file uses: the one error shape, and a profile as the API returns it.
--
-- `check_function_bodies = off` (as pg_dump sets it): Postgres checks a SQL-language
-- function's body when it is created, which would tie the order of these files to every call
-- between them. The files are applied to an empty database in lexical order; the equivalence
-- test (tests/test_declarative_schema.py) and each function's own tests check the bodies.

set check_function_bodies = off;

-- Domain errors: the code is the message (what the Python side switches on), the hint is for
-- a person, the detail is JSON. PostgREST returns the same three fields.
create or replace function svc_private.raise_error(
  p_code text, p_message text, p_details jsonb default '{}'::jsonb
) returns void language plpgsql as $$
begin
  raise exception using errcode = 'P0001', message = p_code, hint = p_message,
    detail = p_details::text;
end $$;

-- The caller's live profile, locked; NOT_FOUND for another user's or a deleted one, and
-- PROFILE_DISABLED (with the operator's reason) for one an operator disabled, so every action on
-- it (uploads, trainings, conversions, activation) gets a 403.
create or replace function svc_private.owned_profile(p_user_id uuid, p_profile_id uuid)
returns public.voice_profiles language plpgsql as $$
declare
  v_profile public.voice_profiles;
begin
  select * into v_profile from public.voice_profiles
   where id = p_profile_id and user_id = p_user_id and deleted_at is null
   for update;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That voice profile does not exist.',
                                    jsonb_build_object('profile_id', p_profile_id));
  end if;
  if v_profile.status = 'disabled' then
    perform svc_private.raise_error('PROFILE_DISABLED',
      format('This voice profile has been disabled by the service: %s',
             coalesce(v_profile.disabled_reason, 'no reason given')),
      jsonb_build_object('profile_id', p_profile_id, 'reason', v_profile.disabled_reason));
  end if;
  return v_profile;
end $$;

-- What a profile's dataset holds. Full mixes are counted apart: what trains (and every other
-- figure) is the rest, the separated vocals included.
create or replace function svc_private.dataset_summary(p_profile_id uuid)
returns jsonb language sql stable as $$
  select jsonb_build_object(
    'ready_files', count(*) filter (where status = 'ready'),
    'pending_files', count(*) filter (where status = 'pending'),
    'rejected_files', count(*) filter (where status = 'rejected'),
    'ready_seconds', coalesce(sum(duration_sec) filter (where status = 'ready'), 0),
    'voice_ratio', sum(voice_ratio * duration_sec) filter (where status = 'ready')
                   / nullif(sum(duration_sec) filter (where status = 'ready'
                                                      and voice_ratio is not null), 0),
    -- noise powers add up: the dataset's SNR is total vocal power over total noise power
    'snr_db', 10 * log(sum(duration_sec) filter (where status = 'ready' and snr_db is not null)
                       / nullif(sum(duration_sec * power(10, -snr_db / 10))
                                  filter (where status = 'ready' and snr_db is not null), 0)),
    'singer_consistency', avg(singer_similarity) filter (where status = 'ready'),
    'other_singer_files', count(*) filter (where status = 'ready' and other_singer),
    'full_mix_files', (select count(*) from public.dataset_files m
                        where m.profile_id = p_profile_id and m.full_mix
                          and m.status in ('pending', 'ready')))
  from public.dataset_files where profile_id = p_profile_id and not full_mix
$$;

create or replace function svc_private.profile_json(p_profile public.voice_profiles)
returns jsonb language sql stable as $$
  select to_jsonb(p_profile) || jsonb_build_object(
    'dataset', svc_private.dataset_summary(p_profile.id))
$$;


create or replace function public.health()
returns jsonb language sql stable security definer set search_path = '' as $$
  select jsonb_build_object('ok', true, 'now', now())
$$;
