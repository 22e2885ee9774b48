"""The local stand-in for R2 → Queue → relay Worker: follows the SeaweedFS filer's metadata
events for the bucket and pushes R2-shaped notifications, signed `v1a` exactly as the
Worker signs them, to `POST /events/r2`. The local pipeline is event-driven like production.
"""

import base64
import json
import logging
import subprocess
import threading
import time
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx

from pipeline import redact
from pipeline.local.processes import stop_process
from pipeline.local.seaweed import GRPC_OFFSET, weed_binary
from pipeline.webhooks import sign_v1a

log = logging.getLogger(__name__)
LOCAL_ACCOUNT = "local"
RESTART_BACKOFF = (0.5, 10.0)  # first and longest wait before the tail is started again


def _grpc_address(filer: str) -> str:
    host, _, port = filer.rpartition(":")
    return f"{host}:{int(port) + GRPC_OFFSET}"


def r2_event(bucket: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """An R2 notification for one filer metadata record, or None if it is not an object."""
    directory = record.get("directory", "")
    note = record.get("eventNotification") or {}
    new, old = note.get("newEntry"), note.get("oldEntry")
    entry = new or old
    prefix = f"/buckets/{bucket}"
    if not entry or entry.get("isDirectory") or not directory.startswith(prefix):
        return None
    key = f"{directory}/{entry['name']}".removeprefix(prefix + "/")
    when = datetime.fromtimestamp(int(record.get("tsNs", 0)) / 1e9, UTC)
    event: dict[str, Any] = {
        "account": LOCAL_ACCOUNT,
        "bucket": bucket,
        "eventTime": when.isoformat().replace("+00:00", "Z"),
    }
    if new is None:
        return event | {"action": "DeleteObject", "object": {"key": key}}
    size = int(new.get("attributes", {}).get("fileSize", 0))
    return event | {
        "action": "PutObject",
        "object": {"key": key, "size": size, "eTag": _etag(new)},
    }


def _etag(entry: dict[str, Any]) -> str:
    stored = entry.get("extended", {}).get("Seaweed-X-Amz-ETag")
    if stored:
        return base64.b64decode(stored).decode().strip('"')
    md5 = entry.get("attributes", {}).get("md5", "")
    return base64.b64decode(md5).hex() if md5 else ""


def iter_json_objects(stream: Any) -> Any:
    """Concatenated (pretty-printed) JSON objects from a text stream, one at a time."""
    decoder = json.JSONDecoder()
    buffer = ""
    for line in stream:
        buffer += line
        while True:
            stripped = buffer.lstrip()
            if not stripped:
                buffer = ""
                break
            try:
                obj, end = decoder.raw_decode(stripped)
            except ValueError:
                break
            yield obj
            buffer = stripped[end:]


class LocalRelay:
    """Follows the filer with `weed filer.meta.tail` and pushes each object event.

    The tail is supervised: it exits at once when it cannot reach the filer's gRPC port (the
    filer port + 10000; another program holding that port is enough), and an unwatched tail
    would leave every upload "pending" until the reconciler's next pass. So its stderr is
    logged, and whenever it exits it is started again after a backoff, resuming from the last
    record it delivered (`-timeAgo`), so an upload made while it was down is still relayed.
    """

    def __init__(self, filer: str, bucket: str, api_url: str, secret_key: str) -> None:
        self.filer, self.bucket = filer, bucket
        self.endpoint = f"{api_url.rstrip('/')}/events/r2"
        self.secret_key = secret_key
        self.process: subprocess.Popen[str] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="local-relay")
        self.delivered = 0
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.RLock()
        self._resume_from = time.time()  # where a restarted tail picks up
        self._last_ns = 0  # the newest record handled: a replayed one is skipped

    def start(self) -> "LocalRelay":
        self._spawn(first=True)
        self.thread.start()
        return self

    def _spawn(self, first: bool = False) -> subprocess.Popen[str]:
        args = [
            weed_binary(),
            "filer.meta.tail",
            f"-filer={self.filer}",
            f"-pathPrefix=/buckets/{self.bucket}/",
        ]
        if not first:  # one second of overlap; records already handled are skipped
            args.append(f"-timeAgo={max(time.time() - self._resume_from, 0) + 1:.3f}s")
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(
            target=self._log_stderr, args=(process,), daemon=True, name="local-relay-stderr"
        ).start()
        with self._lock:
            self.process = process
        return process

    @staticmethod
    def _log_stderr(process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if line.strip():
                log.warning("relay tail (pid %d): %s", process.pid, line.rstrip())

    def _run(self) -> None:
        backoff = RESTART_BACKOFF[0]
        with httpx.Client(timeout=60) as client:
            while True:
                process = self.process
                assert process is not None and process.stdout is not None
                started = time.monotonic()
                for record in iter_json_objects(process.stdout):
                    self._handle(client, record)
                code = process.wait()
                if self._stopping.is_set():
                    return
                if time.monotonic() - started > RESTART_BACKOFF[1]:
                    backoff = RESTART_BACKOFF[0]  # it had been running: not a crash loop
                log.error(
                    "relay tail exited with %s (is the filer's gRPC port %s reachable?); "
                    "restarting in %.1fs",
                    code,
                    _grpc_address(self.filer),
                    backoff,
                )
                if self._stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, RESTART_BACKOFF[1])
                with self._lock:  # stop() either sees the new tail or stops this loop
                    if self._stopping.is_set():
                        return
                    self.restarts += 1
                    self._spawn()

    def _handle(self, client: httpx.Client, record: dict[str, Any]) -> None:
        ts_ns = int(record.get("tsNs", 0) or 0)
        if ts_ns and ts_ns <= self._last_ns:
            return  # replayed by a restarted tail's overlap
        event = r2_event(self.bucket, record)
        if event is not None:
            self._push(client, event)
        if ts_ns:
            self._last_ns = ts_ns
            self._resume_from = ts_ns / 1e9

    def _push(self, client: httpx.Client, event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        msg_id = f"msg_{uuid4().hex}"
        for attempt in range(8):
            timestamp = str(int(time.time()))
            headers = {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": timestamp,
                "webhook-signature": sign_v1a(self.secret_key, msg_id, timestamp, body),
            }
            try:
                response = client.post(self.endpoint, content=body, headers=headers)
                if response.status_code < 500 and response.status_code not in (401, 429):
                    self.delivered += 1
                    return
            except httpx.HTTPError as exc:
                log.warning("relay push failed: %s", exc)
            time.sleep(min(0.5 * 2**attempt, 10))
        log.error(
            "gave up pushing %s; the reconciler will pick it up",
            redact.key(event["object"]["key"]),
        )

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            process = self.process
        stop_process(process, timeout=5)
        self.thread.join(5)
