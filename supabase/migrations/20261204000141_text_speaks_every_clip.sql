-- Text in an instant voice hears the whole voice, as an instant conversion does: the worker's
-- view of a voice (its row and the keys of its ready added clips, oldest first) is one
-- function, `svc_private.instant_voice_for_worker`, read by `instant_job_voice` and by
-- `text_voice` (before, a line was spoken from the first clip only). A clip is not a voice:
-- `start_text` refuses a clip's id as it refuses any unknown voice. And a voice with a line
-- still being spoken in it is not deleted from under that line: `delete_instant_voice`
-- refuses it as it refuses one with a running conversion (before, the line's row went by
-- cascade while its worker still ran).

create or replace function svc_private.instant_voice_for_worker(p_voice_id uuid)
returns jsonb language sql stable set search_path = '' as $$
  select to_jsonb(v) || jsonb_build_object('clip_keys', coalesce((
           select jsonb_agg(c.reference_key order by c.created_at, c.id)
             from public.instant_voices c where c.clip_of = v.id and c.status = 'ready'),
           '[]'::jsonb))
    from public.instant_voices v
   where v.id = p_voice_id and v.clip_of is null and v.status = 'ready'
$$;

-- The reference an instant job converts with, for the worker (which holds only the job id).
create or replace function public.instant_job_voice(p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_voice jsonb;
begin
  select svc_private.instant_voice_for_worker(j.voice_id) into v_voice
    from public.instant_jobs j where j.id = p_job_id;
  if v_voice is null then
    perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                    jsonb_build_object('job_id', p_job_id));
  end if;
  return v_voice;
end $$;

create or replace function public.start_text(
  p_user_id uuid, p_profile_id uuid, p_job_id uuid, p_voice_kind text,
  p_model_version_id uuid, p_instant_voice_id uuid, p_text text, p_language text,
  p_params jsonb, p_max_chars integer, p_default_limit integer, p_max_active integer default 1,
  p_gpu_seconds_per_month integer default null
) returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_profile public.voice_profiles := svc_private.owned_profile(p_user_id, p_profile_id);
  v_model_id uuid;
  v_instant_status text;
  v_job public.text_jobs;
begin
  if p_text is null or btrim(p_text) = '' then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The text is empty: type something to say.',
                                    jsonb_build_object('field', 'text'));
  end if;
  if char_length(p_text) > p_max_chars then
    perform svc_private.raise_error('INVALID_ARGUMENT',
      format('The text is %s characters long; at most %s can be spoken.',
             char_length(p_text), p_max_chars),
      jsonb_build_object('field', 'text', 'length', char_length(p_text),
                         'max_chars', p_max_chars));
  end if;
  if p_text ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]' then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'The text holds a control character.',
                                    jsonb_build_object('field', 'text'));
  end if;
  if p_voice_kind = 'trained' then
    v_model_id := coalesce(p_model_version_id, v_profile.active_model_version_id);
    if v_model_id is null then
      perform svc_private.raise_error('NO_MODEL',
        'This profile has no trained model yet. Train one first.',
        jsonb_build_object('profile_id', p_profile_id));
    end if;
    if not exists (select 1 from public.model_versions where id = v_model_id
                     and profile_id = p_profile_id and status = 'ready') then
      perform svc_private.raise_error('NOT_FOUND', 'That model version does not exist.',
                                      jsonb_build_object('model_version_id', v_model_id));
    end if;
  elsif p_voice_kind <> 'instant' or p_instant_voice_id is null then
    perform svc_private.raise_error('INVALID_ARGUMENT', 'Name a trained or an instant voice.',
                                    jsonb_build_object('field', 'voice'));
  else
    -- an instant voice (not one of its clips) of this profile whose reference was uploaded
    -- and passed its check
    select v.status into v_instant_status from public.instant_voices v
     where v.id = p_instant_voice_id and v.user_id = p_user_id and v.profile_id = p_profile_id
       and v.clip_of is null
       for share;
    if v_instant_status is null then
      perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                      jsonb_build_object('instant_voice_id', p_instant_voice_id));
    elsif v_instant_status <> 'ready' then
      perform svc_private.raise_error('REFERENCE_NOT_READY',
        'This instant voice''s reference is not ready: it has not been uploaded and checked, '
        || 'or it was rejected.',
        jsonb_build_object('instant_voice_id', p_instant_voice_id, 'status', v_instant_status));
    end if;
  end if;
  insert into public.text_jobs
    (id, user_id, profile_id, voice_kind, model_version_id, instant_voice_id, text, language,
     params, progress, quota_period_start)
  values (p_job_id, p_user_id, p_profile_id, p_voice_kind, v_model_id,
          case when p_voice_kind = 'instant' then p_instant_voice_id end, p_text, p_language,
          coalesce(p_params, '{}'::jsonb), jsonb_build_object('phase', 'queued'),
          svc_private.admit_job('text', p_user_id, p_default_limit, p_max_active,
                                p_gpu_seconds_per_month))
  returning * into v_job;
  return to_jsonb(v_job);
end $$;

-- What the worker speaks with, by the job alone: the model version, and the voice's speaker
-- centroid, the mean of the Resemblyzer embeddings the one-singer check stored for the
-- profile's ready files (null before that check ran); or the instant voice with its clips.
create or replace function public.text_voice(p_job_id uuid)
returns jsonb language plpgsql stable security definer set search_path = '' as $$
declare
  v_job public.text_jobs;
  v_model jsonb;
  v_instant jsonb;
  v_centroid real[];
begin
  select j.* into v_job from public.text_jobs j
    join public.voice_profiles p on p.id = j.profile_id
   where j.id = p_job_id and p.deleted_at is null;
  if v_job.id is null then
    perform svc_private.raise_error('NOT_FOUND', 'That text job does not exist.',
                                    jsonb_build_object('job_id', p_job_id));
  end if;
  if v_job.voice_kind = 'instant' then
    -- the worker measures the centroid from the reference itself
    v_instant := svc_private.instant_voice_for_worker(v_job.instant_voice_id);
    if v_instant is null then
      perform svc_private.raise_error('NOT_FOUND', 'That instant voice does not exist.',
                                      jsonb_build_object('job_id', p_job_id));
    end if;
    return jsonb_build_object('voice_kind', 'instant', 'model_version', null,
                              'instant_voice_id', v_job.instant_voice_id,
                              'instant_voice', v_instant, 'centroid', null);
  end if;
  select to_jsonb(m) into v_model from public.model_versions m where m.id = v_job.model_version_id;
  select array_agg(v order by i) into v_centroid
    from (select u.i, avg(u.v)::real as v
            from public.dataset_file_embeddings x
            join public.dataset_files f on f.id = x.file_id
           cross join lateral unnest(x.embedding) with ordinality as u(v, i)
           where x.profile_id = v_job.profile_id and f.status = 'ready'
           group by u.i) c;
  return jsonb_build_object('voice_kind', v_job.voice_kind, 'model_version', v_model,
                            'instant_voice_id', v_job.instant_voice_id,
                            'centroid', to_jsonb(v_centroid));
end $$;

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
  v_owner := coalesce(v_voice.clip_of, v_voice.id);  -- the voice whose jobs count
  perform 1 from public.instant_jobs where voice_id = v_owner for update;
  if exists (select 1 from public.instant_jobs where voice_id = v_owner
               and status in ('queued', 'running')) then
    perform svc_private.raise_error('INSTANT_IN_PROGRESS',
      'A conversion with this voice is still running. Cancel it or wait for it first.',
      jsonb_build_object('voice_id', v_owner));
  end if;
  perform 1 from public.text_jobs where instant_voice_id = v_owner for update;
  if exists (select 1 from public.text_jobs where instant_voice_id = v_owner
               and status in ('queued', 'running')) then
    perform svc_private.raise_error('INSTANT_IN_PROGRESS',
      'A line is still being spoken in this voice. Cancel it or wait for it first.',
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

-- the new private helper, like every svc_private function, is no caller's to run
select svc_private.restrict_to_service(array[]::text[]);
