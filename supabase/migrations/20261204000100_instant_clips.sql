-- An instant voice of more than one clip (issue 26: "a named reference, one or more clips").
-- A clip added to a voice is a row of instant_voices pointing at it (`clip_of`), under its own
-- key `instant/<clip id>/reference.<ext>`: it is uploaded, its event routed and probed, claimed
-- against the orphan sweep and queued for deletion exactly as a voice's first reference is,
-- so nothing outside this kind changes. The worker joins the ready clips, oldest first, up to
-- the 25 s the model uses (gpu/instant/job.py); deleting the voice deletes every clip's audio.

alter table public.instant_voices
  add column if not exists clip_of uuid references public.instant_voices (id) on delete cascade;
create index if not exists instant_voices_clip_idx
  on public.instant_voices (clip_of, created_at) where clip_of is not null;

-- A voice as the API shows it: its own row, and its added clips, oldest first.
create or replace function svc_private.instant_voice_json(p_voice public.instant_voices)
returns jsonb language sql stable set search_path = '' as $$
  select to_jsonb(p_voice) || jsonb_build_object('clips', coalesce((
    select jsonb_agg(jsonb_build_object(
             'id', c.id, 'status', c.status, 'reference_filename', c.reference_filename,
             'reference_seconds', c.reference_seconds, 'error_code', c.error_code,
             'error_message', c.error_message, 'consent_text', c.consent_text,
             'consent_at', c.consent_at, 'created_at', c.created_at)
           order by c.created_at, c.id)
      from public.instant_voices c where c.clip_of = p_voice.id), '[]'::jsonb))
$$;

create or replace function public.get_instant_voice(p_user_id uuid, p_voice_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_voice jsonb;
begin
  select svc_private.instant_voice_json(v) into v_voice from public.instant_voices v
   where v.id = p_voice_id and v.user_id = p_user_id and v.clip_of is null;
  if v_voice is null then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('voice_id', p_voice_id));
  end if;
  return v_voice;
end $$;

create or replace function public.list_instant_voices(p_user_id uuid, p_profile_id uuid)
returns jsonb language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(svc_private.instant_voice_json(v) order by v.created_at desc),
                  '[]'::jsonb)
    from public.instant_voices v
   where v.user_id = p_user_id and v.profile_id = p_profile_id and v.clip_of is null
$$;

-- Another clip for a voice, awaiting its upload (probed like the first), with the consent the
-- person confirmed again for it. Refused past `p_max_clips` clips in all, or once the ready
-- clips already fill the `p_max_seconds` the model uses (more would not be heard).
create or replace function public.add_instant_clip(
  p_user_id uuid, p_voice_id uuid, p_clip_id uuid, p_reference_key text, p_filename text,
  p_size_bytes bigint, p_consent_text text, p_upload_expires_at timestamptz,
  p_max_clips integer, p_max_seconds double precision
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_voice public.instant_voices;
  v_clips integer;
  v_seconds double precision;
  v_clip public.instant_voices;
begin
  select * into v_voice from public.instant_voices
   where id = p_voice_id and user_id = p_user_id and clip_of is null for update;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('voice_id', p_voice_id));
  end if;
  perform svc_private.owned_profile(p_user_id, v_voice.profile_id);
  if v_voice.status = 'rejected' then
    perform svc_private.raise_error('REFERENCE_NOT_READY',
      'This voice''s first sample was rejected: delete the voice and start it again.',
      jsonb_build_object('voice_id', p_voice_id, 'status', v_voice.status));
  end if;
  if p_reference_key not like format('vc/users/%s/profiles/%s/instant/%s/reference.%%',
                                     p_user_id, v_voice.profile_id, p_clip_id) then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The object key does not match its owner.',
                                    jsonb_build_object('reference_key', p_reference_key));
  end if;
  if coalesce(length(trim(p_consent_text)), 0) = 0 then
    perform svc_private.raise_error('CONSENT_REQUIRED',
      'Confirm that the reference is your own voice or that you have the right to use it.',
      '{}'::jsonb);
  end if;
  select 1 + count(*), coalesce(v_voice.reference_seconds, 0)
           + coalesce(sum(reference_seconds) filter (where status = 'ready'), 0)
    into v_clips, v_seconds
    from public.instant_voices where clip_of = p_voice_id;
  if v_clips >= p_max_clips then
    perform svc_private.raise_error('TOO_MANY_FILES',
      format('This voice has %s clips, the most it takes. Delete one to add another.', v_clips),
      jsonb_build_object('clips', v_clips, 'max_clips', p_max_clips));
  end if;
  if v_seconds >= p_max_seconds then
    perform svc_private.raise_error('TOO_MANY_FILES',
      format('This voice''s clips already hold %s s, all the instant model uses. '
             'Delete a clip to add another.', round(v_seconds::numeric, 1)),
      jsonb_build_object('seconds', v_seconds, 'max_seconds', p_max_seconds));
  end if;
  insert into public.instant_voices
    (id, user_id, profile_id, clip_of, name, reference_key, reference_filename,
     reference_size_bytes, consent_text, upload_expires_at)
  values (p_clip_id, p_user_id, v_voice.profile_id, p_voice_id, v_voice.name, p_reference_key,
          p_filename, p_size_bytes, p_consent_text, p_upload_expires_at)
  returning * into v_clip;
  return to_jsonb(v_clip);
end $$;

-- Deletes a voice (every clip with it) or one added clip; returns every object key they held,
-- for the caller to delete from the bucket. Kept while a conversion with the voice runs.
create or replace function public.delete_instant_voice(p_user_id uuid, p_voice_id uuid)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_voice public.instant_voices;
  v_owner uuid;
  v_keys text[];
begin
  select * into v_voice from public.instant_voices
   where id = p_voice_id and user_id = p_user_id for update;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('voice_id', p_voice_id));
  end if;
  v_owner := coalesce(v_voice.clip_of, v_voice.id);  -- the voice whose conversions count
  perform 1 from public.instant_jobs where voice_id = v_owner for update;
  if exists (select 1 from public.instant_jobs where voice_id = v_owner
               and status in ('queued', 'running')) then
    perform svc_private.raise_error('INSTANT_IN_PROGRESS',
      'A conversion with this voice is still running. Cancel it or wait for it first.',
      jsonb_build_object('voice_id', v_owner));
  end if;
  if v_voice.clip_of is not null then
    delete from public.instant_voices where id = p_voice_id;
    return jsonb_build_object('voice_id', p_voice_id, 'keys', to_jsonb(array[v_voice.reference_key]));
  end if;
  select array[v_voice.reference_key]
         || coalesce((select array_agg(c.reference_key order by c.created_at)
                        from public.instant_voices c where c.clip_of = p_voice_id), '{}')
         || coalesce(array_agg(k) filter (where k is not null), '{}')
    into v_keys
    from public.instant_jobs j,
         unnest(array[j.input_key, j.output_key] || svc_private.instant_part_keys(j)) k
   where j.voice_id = p_voice_id;
  delete from public.instant_voices where id = p_voice_id;
  return jsonb_build_object('voice_id', p_voice_id, 'keys', to_jsonb(v_keys));
end $$;

-- An instant conversion awaiting its input's upload, its own quota unit reserved; refuses while
-- the GPU budget is spent, while another runs, or when the voice's reference is not ready.
create or replace function public.create_instant_job(
  p_user_id uuid, p_voice_id uuid, p_job_id uuid, p_params jsonb, p_input_key text,
  p_input_filename text, p_input_size_bytes bigint, p_upload_expires_at timestamptz,
  p_default_limit integer, p_max_active integer default 1,
  p_gpu_seconds_per_month integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_voice public.instant_voices;
  v_period date;
  v_job public.instant_jobs;
  v_stale uuid;
begin
  select * into v_voice from public.instant_voices
   where id = p_voice_id and user_id = p_user_id and clip_of is null for update;
  if not found then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('voice_id', p_voice_id));
  end if;
  perform svc_private.owned_profile(p_user_id, v_voice.profile_id);
  if v_voice.status <> 'ready' then
    perform svc_private.raise_error('REFERENCE_NOT_READY',
      case v_voice.status when 'rejected' then 'This voice''s reference was rejected: '
                                                || coalesce(v_voice.error_message, '')
           else 'This voice''s reference has not been uploaded and checked yet.' end,
      jsonb_build_object('voice_id', p_voice_id, 'status', v_voice.status));
  end if;
  if p_input_key not like format('vc/users/%s/profiles/%s/instant-jobs/%s/input.%%',
                                 p_user_id, v_voice.profile_id, p_job_id) then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The object key does not match its owner.',
                                    jsonb_build_object('input_key', p_input_key));
  end if;
  -- a ticket whose input never came must not hold the one-at-a-time slot: it ends here
  -- (canceled, refunded) rather than waiting for the next reaper run
  for v_stale in select id from public.instant_jobs
                  where user_id = p_user_id and status = 'awaiting_upload'
                    and upload_expires_at < now() order by id for update loop
    perform svc_private.end_job('instant', svc_private.lock_job('instant', v_stale),
      'canceled', 'UPLOAD_EXPIRED', 'The input was not uploaded in time.');
  end loop;
  v_period := svc_private.admit_job('instant', p_user_id, p_default_limit, p_max_active,
                                   p_gpu_seconds_per_month);
  insert into public.instant_jobs
    (id, user_id, profile_id, voice_id, params, input_key, input_filename, input_size_bytes,
     upload_expires_at, progress, quota_period_start)
  values (p_job_id, p_user_id, v_voice.profile_id, p_voice_id, coalesce(p_params, '{}'::jsonb),
          p_input_key, p_input_filename, p_input_size_bytes, p_upload_expires_at,
          jsonb_build_object('phase', 'awaiting_upload'), v_period)
  returning * into v_job;
  return to_jsonb(v_job);
end $$;

-- The reference an instant job converts with, for the worker (which holds only the job id):
-- the voice's row and `clip_keys`, its added clips that passed the probe, oldest first.
create or replace function public.instant_job_voice(p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_voice jsonb;
begin
  select to_jsonb(v) || jsonb_build_object('clip_keys', coalesce((
           select jsonb_agg(c.reference_key order by c.created_at, c.id)
             from public.instant_voices c where c.clip_of = v.id and c.status = 'ready'),
           '[]'::jsonb))
    into v_voice
    from public.instant_jobs j join public.instant_voices v on v.id = j.voice_id
   where j.id = p_job_id and v.status = 'ready';
  if v_voice is null then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('job_id', p_job_id));
  end if;
  return v_voice;
end $$;

select svc_private.restrict_to_service(array['add_instant_clip']);
