"""One singer-check worker per profile, not one per ready file: the request is taken in SQL
(real Postgres, the real migrations), a request while one is pending is a no-op and one
while it runs makes it run exactly once more."""

from uuid import UUID, uuid4

from pipeline import keys
from pipeline.dispatch import InlineDispatcher, RoutingDispatcher
from pipeline.repository import Repository
from pipeline.services import build_services
from pipeline.singer_check import KIND, request_singer_check
from tests.audio import encode
from tests.vocals import RATE, singing


def register(repo, storage, user_id: UUID, profile_id: UUID, seed: int) -> UUID:
    data = encode(singing(3, seed=seed), RATE, "wav")
    file_id = uuid4()
    key = keys.dataset_key(user_id, profile_id, file_id, f"take{seed}.wav")
    repo.register_upload(
        user_id, profile_id, file_id, key, f"take{seed}.wav", "audio/wav", len(data)
    )
    storage._s3.put_object(Bucket=storage.bucket, Key=key, Body=data)
    return file_id


def test_many_ready_files_spawn_one_worker(repo, services, settings, alice) -> None:
    asked: list[UUID] = []
    dispatcher = RoutingDispatcher({KIND: InlineDispatcher({KIND: asked.append})})
    probing = build_services(settings.model_copy(update={"singer_check": True}), dispatcher)
    profile = repo.create_profile(alice.id, "twenty takes")
    try:
        probe = probing.runners()["probe"]
        for seed in range(5):
            file_id = register(repo, services.storage, alice.id, profile.id, seed)
            assert probe(file_id).status == "ready"
    finally:
        probing.close()
    assert asked == [profile.id]  # one worker for the five files, not five


def test_requests_while_pending_or_running_coalesce(repo, alice) -> None:
    profile = repo.create_profile(alice.id, "coalesce").id
    assert repo.request_singer_check(profile) is True  # idle: spawn
    assert repo.request_singer_check(profile) is False  # pending: it will see the file
    assert repo.request_singer_check(profile) is False
    repo.begin_singer_check(profile)
    assert repo.finish_singer_check(profile) is False  # nothing asked meanwhile: done
    assert repo.request_singer_check(profile) is True  # idle again

    repo.begin_singer_check(profile)
    assert repo.request_singer_check(profile) is False  # running: once more at its end
    assert repo.request_singer_check(profile) is False
    assert repo.finish_singer_check(profile) is True  # exactly one more pass...
    assert repo.finish_singer_check(profile) is False  # ...then done
    assert repo.request_singer_check(profile) is True


def test_a_dead_worker_does_not_block_the_check(repo, sql, alice) -> None:
    profile = repo.create_profile(alice.id, "stale").id
    assert repo.request_singer_check(profile) is True
    sql.execute(
        "update public.singer_checks set requested_at = now() - interval '1 hour' "
        "where profile_id = %s",
        (profile,),
    )
    assert repo.request_singer_check(profile) is True  # the spawned worker never started
    repo.begin_singer_check(profile)
    sql.execute(
        "update public.singer_checks set started_at = now() - interval '1 hour' "
        "where profile_id = %s",
        (profile,),
    )
    assert repo.request_singer_check(profile) is True  # it started and died
    repo.begin_singer_check(profile)
    assert repo.request_singer_check(profile) is False
    assert repo.finish_singer_check(profile, failed=True) is False  # gave up: no rerun
    assert repo.request_singer_check(profile) is True


class Arriving(Repository):
    """The real repository; while the worker lists files for its first pass, another file of
    the profile becomes ready and the probe asks for the check (as a concurrent probe would)."""

    def __init__(self, repo: Repository, arrive) -> None:
        super().__init__(repo.db, repo.settings)
        self.arrive = arrive
        self.passes = 0

    def singer_check_files(self, profile_id: UUID):
        self.passes += 1
        if self.passes == 1:
            self.arrive()
        return super().singer_check_files(profile_id)


def test_a_file_ready_during_a_run_makes_it_run_once_more(repo, services, settings, alice):
    from gpu.measures.singers import check_profile

    on = settings.model_copy(update={"singer_check": True})
    asked: list[UUID] = []
    dispatcher = RoutingDispatcher({KIND: InlineDispatcher({KIND: asked.append})})
    probing = build_services(on, dispatcher)
    profile = repo.create_profile(alice.id, "arrives").id
    try:
        probe = probing.runners()["probe"]
        first = register(repo, services.storage, alice.id, profile, 1)
        assert probe(first).status == "ready"
        assert asked == [profile]

        def arrive() -> None:
            late = register(repo, services.storage, alice.id, profile, 2)
            assert probe(late).status == "ready"

        worker = Arriving(Repository(repo.db, on), arrive)
        assert check_profile(worker, services.storage, profile) == 2
    finally:
        probing.close()
    assert asked == [profile]  # no second worker: the running one took the late file
    assert worker.passes == 2  # exactly one more pass
    assert repo.singer_check_files(profile) == []
    assert request_singer_check(Repository(repo.db, on), dispatcher, repo.get_dataset_file(first))
    assert asked == [profile, profile]  # idle again: the next request spawns
