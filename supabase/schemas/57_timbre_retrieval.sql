-- Timbre retrieval: a model version may carry the fork's k-means cluster model
-- (`cluster.pt`, beside `model.pth`) and the cluster ratio its conversions use when they do
-- not say, the one its quality report measured as sounding more like the singer.

set check_function_bodies = off;

-- Taken over from the metrics the training worker finishes with (`retrieval`, and the
-- report's `cluster_ratio`), so `finish_training` stays as it is and the version is never
-- seen without them. The key is built from the model's own (the layout allows nothing else).
create or replace function svc_private.model_version_cluster()
returns trigger language plpgsql security definer set search_path = '' as $$
declare
  v_ratio double precision;
begin
  if new.cluster_key is null and coalesce((new.metrics #>> '{retrieval,clusters}')::int, 0) > 0
     and new.model_key like '%/model.pth' then
    new.cluster_key := left(new.model_key, length(new.model_key) - length('model.pth'))
                       || 'cluster.pt';
    v_ratio := (new.metrics #>> '{quality,cluster_ratio}')::double precision;
    if v_ratio is not null and v_ratio between 0 and 1 then
      new.cluster_ratio := v_ratio;
    end if;
  end if;
  return new;
end $$;
create trigger model_version_cluster before insert on public.model_versions
  for each row execute function svc_private.model_version_cluster();

-- A version's cluster file goes with it, however its row goes (a profile's purge, an
-- erasure): queued for the retention drain like the weights `purge_profiles` queues.
create or replace function svc_private.model_version_cluster_gone()
returns trigger language plpgsql security definer set search_path = '' as $$
begin
  if old.cluster_key is not null then
    perform svc_private.enqueue_deletions(old.user_id, array[old.cluster_key],
                                          'model_version_deleted');
  end if;
  return old;
end $$;
create trigger model_version_cluster_gone after delete on public.model_versions
  for each row execute function svc_private.model_version_cluster_gone();
