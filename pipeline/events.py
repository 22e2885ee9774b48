"""The one idempotent handler behind every way an R2 notification arrives (push or pull).

The object key is the security boundary: a message acts only if its key parses and names a
row that the key's user owns under the key's profile. Everything else is ignored and counted:
every outcome, with its reason, is counted per day in the database for operators
(`ops.event_health`), and in `IGNORED` in this process.
Deliveries are at-least-once; a `(bucket, key, eTag)` seen before is skipped, and every
action below is itself a no-op when repeated (docs/architecture.md, "Events: push, pull and
the reconciler").
A key names its user and a dataset file's name, and events keep coming for a person's keys
after `DELETE /me` (the deletes themselves): so the dedupe table stores only a hash of the
id, and logs and the outcome counts see a key only as `pipeline.redact.key` writes it.
"""

import logging
from collections import Counter
from collections.abc import Callable
from uuid import UUID

from pipeline import keys, redact
from pipeline.dispatch import Dispatcher
from pipeline.repository import Repository
from schemas.events import EventOutcome, R2Event

log = logging.getLogger(__name__)
IGNORED: Counter[str] = Counter()  # reason → count, for operators and tests
ConversionHook = Callable[[UUID], None]


def dedupe_id(event: R2Event) -> str:
    """What identifies a delivery; the repository stores only its hash (`redact.digest`)."""
    if event.is_create:
        return f"{event.bucket}/{event.object.key}#{event.object.etag}"
    return f"{event.bucket}/{event.object.key}#{event.action}@{event.event_time.isoformat()}"


class EventHandler:
    def __init__(
        self,
        repo: Repository,
        dispatcher: Dispatcher,
        on_conversion_queued: ConversionHook | None = None,
        on_instant_queued: ConversionHook | None = None,
    ) -> None:
        self.repo = repo
        self.dispatcher = dispatcher
        self.on_conversion_queued = on_conversion_queued
        self.on_instant_queued = on_instant_queued

    def handle(self, event: R2Event) -> EventOutcome:
        outcome = self._handle(event)
        self._count(outcome)
        return outcome

    def _count(self, outcome: EventOutcome) -> None:
        """Best effort: the event's work is done and recorded, so a failed count must not make
        the sender deliver it again."""
        try:
            self.repo.record_event_outcome("r2", outcome.outcome, outcome.reason, outcome.key)
        except Exception:
            log.warning(
                "could not count the %s outcome for %s", outcome.outcome, redact.key(outcome.key)
            )

    def _handle(self, event: R2Event) -> EventOutcome:
        key = event.object.key
        parsed = keys.parse_key(key)
        if event.bucket != self.repo.settings.s3_bucket:
            return self._ignore(key, "other bucket")
        if parsed is None:
            return self._ignore(key, "outside the key layout")
        if event.is_create and not event.object.etag:
            return self._ignore(key, "create without an eTag")
        event_id = dedupe_id(event)
        if self.repo.event_seen("r2", event_id):
            return EventOutcome(key=key, outcome="duplicate")
        if parsed.kind == "dataset":
            outcome = self._dataset(event, parsed)
        elif parsed.kind == "conversion_input":
            outcome = self._conversion_input(event, parsed)
        elif parsed.kind == "instant_reference":
            outcome = self._instant_reference(event, parsed)
        elif parsed.kind == "instant_input":
            outcome = self._instant_input(event, parsed)
        else:
            outcome = self._ignore(key, "written by the pipeline itself")
        self.repo.record_event("r2", event_id)
        return outcome

    def _ignore(self, key: str, reason: str) -> EventOutcome:
        IGNORED[reason] += 1
        log.info("ignored event for %s: %s", redact.key(key), reason)
        return EventOutcome(key=key, outcome="ignored", reason=reason)

    def _dataset(self, event: R2Event, parsed: keys.ParsedKey) -> EventOutcome:
        key = event.object.key
        row = self.repo.get_dataset_file(parsed.object_id)
        if row is None or (row.user_id, row.profile_id, row.object_key) != (
            parsed.user_id,
            parsed.profile_id,
            key,
        ):
            return self._ignore(key, "no such upload for that user")
        if not event.is_create:
            self.repo.mark_object_deleted(key)
            return EventOutcome(key=key, outcome="deleted")
        if row.status != "pending":
            return EventOutcome(key=key, outcome="no_op", reason=f"already {row.status}")
        self.dispatcher.spawn("probe", row.id)
        return EventOutcome(key=key, outcome="probed")

    def _conversion_input(self, event: R2Event, parsed: keys.ParsedKey) -> EventOutcome:
        key = event.object.key
        job = self.repo.get_job_by_id("conversion", parsed.object_id)
        if job is None or (job.user_id, job.profile_id, job.input_key) != (
            parsed.user_id,
            parsed.profile_id,
            key,
        ):
            return self._ignore(key, "no such conversion for that user")
        if not event.is_create or job.status != "awaiting_upload":
            return EventOutcome(key=key, outcome="no_op", reason=f"job is {job.status}")
        queued = self.repo.queue_conversion(parsed.object_id)
        if queued.status == "queued" and self.on_conversion_queued is not None:
            self.on_conversion_queued(parsed.object_id)
        return EventOutcome(key=key, outcome="queued")

    def _instant_reference(self, event: R2Event, parsed: keys.ParsedKey) -> EventOutcome:
        """An instant voice's reference: probed like a dataset file (in the probe's worker)."""
        from pipeline.instant import InstantCalls

        key = event.object.key
        voice = InstantCalls(self.repo).voice_by_id(parsed.object_id)
        if voice is None or (voice.user_id, voice.profile_id, voice.reference_key) != (
            parsed.user_id,
            parsed.profile_id,
            key,
        ):
            return self._ignore(key, "no such instant voice for that user")
        if not event.is_create or voice.status != "awaiting_upload":
            return EventOutcome(key=key, outcome="no_op", reason=f"voice is {voice.status}")
        self.dispatcher.spawn("probe_reference", voice.id)
        return EventOutcome(key=key, outcome="probed")

    def _instant_input(self, event: R2Event, parsed: keys.ParsedKey) -> EventOutcome:
        from pipeline.instant import InstantCalls

        key = event.object.key
        job = self.repo.get_job_by_id("instant", parsed.object_id)
        if job is None or (job.user_id, job.profile_id, job.input_key) != (
            parsed.user_id,
            parsed.profile_id,
            key,
        ):
            return self._ignore(key, "no such instant conversion for that user")
        if not event.is_create or job.status != "awaiting_upload":
            return EventOutcome(key=key, outcome="no_op", reason=f"job is {job.status}")
        queued = InstantCalls(self.repo).queue_job(parsed.object_id)
        if queued.status == "queued" and self.on_instant_queued is not None:
            self.on_instant_queued(parsed.object_id)
        return EventOutcome(key=key, outcome="queued")
