"""The users of a fault run: each one, in its own thread, does what a person does on the page,
over HTTP only (profile, uploads to the presigned URL, a tiny training, conversions, a cancel,
a delete), and keeps asking again after a 503 or a dropped connection, as the page does.

Every answer is tallied: a 5xx other than 503, or a 503 without `Retry-After`, is a
violation; transport errors are counted (the API was down) but are not.
"""

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import httpx

from tests.audio import encode, voice

TERMINAL = {"succeeded", "failed", "canceled", "expired"}
CLIPS = 5  # five 5-second clips: over VC_MIN_DATASET_SECONDS=20, trains in seconds
RETRYABLE = {503}


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    transport_errors: Counter[str] = field(default_factory=Counter)
    unavailable: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, route)

    def record(self, route: str, response: httpx.Response) -> None:
        with self.lock:
            self.answers[(route, response.status_code)] += 1
            status = response.status_code
            if status == 503:
                self.unavailable.append((time.monotonic(), route))
            if status >= 500 and (status != 503 or "retry-after" not in response.headers):
                self.violations.append(f"{route}: {status} {response.text[:300]}")


@dataclass
class UserRun:
    """What one user did and saw: the ids the API gave it and the final states it read."""

    name: str
    token: str
    profile_id: str | None = None
    files: list[str] = field(default_factory=list)
    deleted_files: list[str] = field(default_factory=list)
    trainings: list[str] = field(default_factory=list)
    conversions: list[str] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)  # job id -> final status seen
    gave_up: list[str] = field(default_factory=list)  # steps that never got through


class User:
    def __init__(self, api: str, run: UserRun, tally: Tally, rng: random.Random) -> None:
        self.api, self.run, self.tally, self.rng = api, run, tally, rng
        self.client = httpx.Client(
            base_url=api, headers={"Authorization": f"Bearer {run.token}"}, timeout=30
        )

    # HTTP with the page's patience ------------------------------------------------------

    def call(
        self, method: str, route: str, path: str, *, patience: float = 120, **kw: Any
    ) -> httpx.Response | None:
        """Asks until an answer that is not a 503 (or a refused connection) or `patience`
        runs out (then None)."""
        deadline = time.monotonic() + patience
        while True:
            try:
                response = self.client.request(method, path, **kw)
                self.tally.record(route, response)
                if response.status_code not in RETRYABLE:
                    return response
                wait = float(response.headers.get("retry-after", "1"))
            except httpx.HTTPError as exc:
                with self.tally.lock:
                    self.tally.transport_errors[f"{route}: {type(exc).__name__}"] += 1
                wait = 1.0
            if time.monotonic() + wait > deadline:
                return None
            time.sleep(min(wait, 3))

    def put(self, ticket: dict[str, Any], data: bytes, patience: float = 120) -> bool:
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            try:
                done = httpx.put(
                    ticket["upload_url"], content=data, headers=ticket["headers"], timeout=20
                )
                if done.is_success:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(1)
        return False

    def wait_job(self, kind: str, job_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        status = "unknown"
        while time.monotonic() < deadline:
            got = self.call("GET", f"GET /{kind}s/{{id}}", f"/{kind}s/{job_id}", patience=30)
            if got is not None and got.status_code == 200:
                status = got.json()["status"]
                if status in TERMINAL:
                    break
            time.sleep(1)
        self.run.outcomes[job_id] = status
        return status

    # The person's session ------------------------------------------------------------

    def session(self, job_timeout: float) -> None:
        try:
            self._session(job_timeout)
        finally:
            self.client.close()

    def _session(self, job_timeout: float) -> None:
        run, rng = self.run, self.rng
        made = self.call("POST", "POST /profiles", "/profiles", json={"name": run.name})
        if made is None or made.status_code != 201:
            run.gave_up.append("profile")
            return
        run.profile_id = made.json()["id"]
        for i in range(CLIPS):
            self.upload_clip(i)
        if not self.wait_ready(len(run.files), timeout=90):
            run.gave_up.append("dataset ready")
        training = self.start_training()
        if training is None:
            return
        if rng.random() < 0.2:  # changes their mind
            time.sleep(rng.uniform(0, 5))
            self.cancel("training", training)
        attempts = 1
        while (ended := self.wait_job("training", training, job_timeout)) != "succeeded":
            if attempts == 3 or ended not in TERMINAL:
                return
            training = self.start_training()  # again, as a person would after a failure
            if training is None:
                return
            attempts += 1
        for n in range(rng.choice([1, 2])):
            self.convert(n, job_timeout)
        if run.files and rng.random() < 0.5:
            self.delete_file(run.files[0])

    def upload_clip(self, i: int) -> None:
        run = self.run
        data = encode(voice(5.0, f0=160 + 20 * i, seed=self.rng.randrange(10**6)), 44100, "wav")
        body = {"filename": f"take {i}.wav", "content_type": "audio/wav", "size_bytes": len(data)}
        path = f"/profiles/{run.profile_id}/dataset/uploads"
        got = self.call("POST", "POST /profiles/{id}/dataset/uploads", path, json=body)
        if got is None or got.status_code != 201:
            run.gave_up.append(f"upload {i}")
            return
        ticket = got.json()
        if self.put(ticket, data):
            run.files.append(ticket["file_id"])
        else:
            run.gave_up.append(f"PUT {i}")

    def wait_ready(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        path = f"/profiles/{self.run.profile_id}/dataset/files"
        while time.monotonic() < deadline:
            got = self.call("GET", "GET /profiles/{id}/dataset/files", path, patience=30)
            ready = got is not None and got.status_code == 200
            if ready and sum(f["status"] == "ready" for f in got.json()) >= count:
                return True
            time.sleep(1)
        return False

    def start_training(self) -> str | None:
        path = f"/profiles/{self.run.profile_id}/trainings"
        got = self.call("POST", "POST /profiles/{id}/trainings", path, json={"preset": "tiny"})
        if got is None or got.status_code != 202:
            self.run.gave_up.append(f"training: {got.status_code if got else 'no answer'}")
            return None
        job_id = got.json()["id"]
        self.run.trainings.append(job_id)
        return job_id

    def cancel(self, kind: str, job_id: str) -> None:
        got = self.call("POST", f"POST /{kind}s/{{id}}/cancel", f"/{kind}s/{job_id}/cancel")
        if got is not None and got.status_code == 200:
            self.run.canceled.append(job_id)

    def convert(self, n: int, timeout: float) -> None:
        run = self.run
        data = encode(voice(3.0, seed=self.rng.randrange(10**6)), 44100, "wav")
        body = {"filename": f"song {n}.wav", "content_type": "audio/wav", "size_bytes": len(data)}
        path = f"/profiles/{run.profile_id}/conversions"
        got = self.call("POST", "POST /profiles/{id}/conversions", path, json=body)
        if got is None or got.status_code != 201:
            run.gave_up.append(f"conversion {n}: {got.status_code if got else 'no answer'}")
            return
        job_id = got.json()["job"]["id"]
        run.conversions.append(job_id)
        if not self.put(got.json()["upload"], data):
            run.gave_up.append(f"conversion PUT {n}")
            return
        if self.rng.random() < 0.15:
            self.cancel("conversion", job_id)
        self.wait_job("conversion", job_id, timeout)

    def delete_file(self, file_id: str) -> None:
        path = f"/profiles/{self.run.profile_id}/dataset/files/{file_id}"
        got = self.call("DELETE", "DELETE /profiles/{id}/dataset/files/{id}", path)
        if got is not None and got.status_code == 200:
            self.run.deleted_files.append(file_id)


def run_users(
    api: str, tokens: list[str], seed: int, tally: Tally, job_timeout: float
) -> list[UserRun]:
    """Every user's session in a thread of its own, started a little apart; returns when all
    are done."""
    runs = [UserRun(f"chaos {uuid4().hex[:6]}", token) for token in tokens]
    threads = []
    for i, run in enumerate(runs):
        user = User(api, run, tally, random.Random(seed * 1000 + i))
        thread = threading.Thread(target=user.session, args=(job_timeout,), daemon=True)
        thread.start()
        threads.append(thread)
        time.sleep(0.5)
    for thread in threads:
        thread.join()
    return runs
