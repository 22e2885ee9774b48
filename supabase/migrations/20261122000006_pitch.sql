-- Pitch ranges for a key-aware transpose.
--
-- The training worker measures the F0 of the audio it trained on (median, 5-95 %) and records
-- it on its job; the model version the job finishes with takes it over as it is inserted, so
-- `finish_training` stays as it is and a version never exists without the range its job
-- recorded. The conversion worker measures its input when it probes it and records the range
-- next to the voice's and the suggested shift; the person converting decides.

alter table public.training_jobs add column if not exists pitch_range jsonb;
alter table public.model_versions add column if not exists pitch_range jsonb;
alter table public.conversion_jobs add column if not exists pitch jsonb;

create or replace function public.record_training_pitch(p_job_id uuid, p_pitch_range jsonb)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job('training', p_job_id);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if v_job ->> 'status' <> 'running' then
    perform svc_private.invalid_transition('training', v_job, 'running');
  end if;
  update public.training_jobs set pitch_range = p_pitch_range where id = p_job_id
  returning to_jsonb(training_jobs.*) into v_job;
  return v_job;
end $$;

create or replace function public.record_conversion_pitch(p_job_id uuid, p_pitch jsonb)
returns jsonb language plpgsql security definer set search_path = '' as $$
declare
  v_job jsonb := svc_private.lock_job('conversion', p_job_id);
begin
  if svc_private.is_terminal(v_job ->> 'status') then
    return v_job;
  end if;
  if v_job ->> 'status' <> 'running' then
    perform svc_private.invalid_transition('conversion', v_job, 'running');
  end if;
  update public.conversion_jobs set pitch = p_pitch where id = p_job_id
  returning to_jsonb(conversion_jobs.*) into v_job;
  return v_job;
end $$;

-- A new model version carries the pitch range its training job recorded.
create or replace function svc_private.model_version_pitch()
returns trigger language plpgsql security definer set search_path = '' as $$
begin
  if new.pitch_range is null then
    select j.pitch_range into new.pitch_range
      from public.training_jobs j where j.id = new.training_job_id;
  end if;
  return new;
end $$;

drop trigger if exists model_version_pitch on public.model_versions;
create trigger model_version_pitch before insert on public.model_versions
  for each row execute function svc_private.model_version_pitch();

select svc_private.restrict_to_service(array['record_training_pitch', 'record_conversion_pitch']);

-- The training and conversion workers call these under the worker login.
select svc_private.grant_to_worker(array['record_training_pitch', 'record_conversion_pitch']);
