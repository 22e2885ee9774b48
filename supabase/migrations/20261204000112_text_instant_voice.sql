-- Text in an instant voice (issues 26/27): a text job may name an instant voice of its
-- profile, checked ready at the start like a trained voice's model; the worker is handed the
-- voice's reference (text_voice) and converts the base speech with Seed-VC. The instant voice
-- is a real reference now: its text jobs go with it (their files queued by their delete
-- trigger), as a trained voice's go with its model version. Jobs naming a voice that no
-- longer exists could never be spoken (they failed INSTANT_UNAVAILABLE) and are dropped.

set check_function_bodies = off;

delete from public.text_jobs t
 where t.instant_voice_id is not null
   and not exists (select 1 from public.instant_voices v where v.id = t.instant_voice_id);
alter table public.text_jobs drop constraint if exists text_jobs_instant_voice_id_fkey;
alter table public.text_jobs add constraint text_jobs_instant_voice_id_fkey
  foreign key (instant_voice_id) references public.instant_voices (id) on delete cascade;
create index if not exists text_jobs_instant_voice_idx on public.text_jobs (instant_voice_id);

-- Starts a text job, queued: the text checked again here (the API checked it first, with the
-- same limit), the voice resolved (a trained one defaults to the profile's active model; an
-- instant one must be the profile's and ready), then the GPU budget, the quota and the
-- one-at-a-time rule.
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
    -- an instant voice of this profile whose reference was uploaded and passed its check
    select v.status into v_instant_status from public.instant_voices v
     where v.id = p_instant_voice_id and v.user_id = p_user_id and v.profile_id = p_profile_id
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

-- What the worker speaks with, by the job alone: for a trained voice the model version and
-- the voice's speaker centroid, the mean of the Resemblyzer embeddings the one-singer check
-- stored for the profile's ready files (null before that check ran); for an instant voice its
-- row (the reference's key), the centroid left to the worker, which embeds the reference.
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
    -- its reference, read through instant's own lookup; the worker measures the centroid
    -- from the reference itself
    select to_jsonb(v) into v_instant from public.instant_voices v
     where v.id = v_job.instant_voice_id and v.status = 'ready';
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

select svc_private.restrict_to_service(array['start_text', 'text_voice']);
select svc_private.grant_to_worker(array['text_voice']);
