"""Asking for the one-singer check after a probe: a `singers` worker for the profile
(`python -m gpu singers <profile_id>` locally, a Modal function in production). Torch-free:
the embedding itself runs in `gpu.measures.singers`.

One worker per profile, not one per file: SQL (`request_singer_check`) says whether to spawn.
A request while one is pending is a no-op (the pending worker will see the file); one while
it runs makes that worker run once more at its end. So a 20-file upload costs one or two
workers, not 20.

The check is advisory: if it cannot be started, the file stays ready and a later ready file
of the profile asks again once the request has gone stale (the worker embeds every file
that has no embedding yet).
"""

import logging

from pipeline.dispatch import Dispatcher
from pipeline.repository import Repository
from schemas.profiles import DatasetFile

log = logging.getLogger(__name__)
KIND = "singers"


def request_singer_check(
    repo: Repository, dispatcher: Dispatcher, row: DatasetFile | None
) -> str | None:
    """The spawned worker's id, or None when none was needed (or it could not start)."""
    if not repo.settings.singer_check or row is None or row.status != "ready":
        return None
    try:
        if not repo.request_singer_check(row.profile_id):
            return None
        return dispatcher.spawn(KIND, row.profile_id)
    except Exception:
        log.warning("could not start the singer check of profile %s", row.profile_id)
        return None
