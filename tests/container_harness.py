"""Runs one Modal function's body the way its container would; executed by
tests/test_modal_container.py as `python -c <this file>` with a container's file tree as the
working directory and a container's environment, so `import modal_app` sees only what the
image holds.

Argument: JSON `{"function", "calls": [[args…], …], "cls"?: name, "health"?: bool,
"count_connections"?: bool}`. Prints one JSON line: each call's result, the Modal lookups
the dispatcher made, and (when asked) this process's open database connections before the
container's exit hooks ran.

Only Modal's cloud is replaced (it cannot exist here): `Function/Cls.from_name` record the
lookup and hand back something that spawns nothing, and the work volume's commit is
recorded. Everything else (Postgres, S3, the fork) is real.
"""

import importlib.util
import json
import os
import sys
from types import SimpleNamespace
from typing import Any

plan = json.loads(sys.argv[1])
lookups: list[dict[str, Any]] = []
commits: list[int] = []

import modal  # noqa: E402
from modal._partial_function import _find_callables_for_obj, _PartialFunctionFlags  # noqa: E402


def _spawner(app: str, name: str, environment_name: str | None) -> Any:
    def spawn(*args: Any) -> Any:
        lookups.append({"app": app, "name": name, "environment": environment_name, "args": args})
        return SimpleNamespace(object_id=f"fc-{len(lookups)}")

    return SimpleNamespace(spawn=spawn)


modal.Function.from_name = lambda app, name, environment_name=None: _spawner(
    app, name, environment_name
)
modal.Cls.from_name = lambda app, name, environment_name=None: (
    lambda: SimpleNamespace(
        **{m: _spawner(app, f"{name}.{m}", environment_name) for m in ("convert", "probe")}
    )
)

# The local stack lives on this machine, which the production guard (pipeline/production.py,
# where present) rightly refuses under VC_DISPATCH=modal: only those refusals are let pass,
# so every other check of the guard (keys, secrets, CORS) still runs on the zone's secrets.
if importlib.util.find_spec("pipeline.production"):
    from pipeline import production

    def _not_about_this_machine(settings: object, zone: str, real=production.production_problems):
        return [p for p in real(settings, zone) if "this machine" not in p.reason]

    production.production_problems = _not_about_this_machine

import modal_app  # noqa: E402

modal_app.work_volume = SimpleNamespace(commit=lambda: commits.append(1))


def connections() -> int:
    import psycopg

    url = os.environ["VC_DATABASE_URL"]
    with psycopg.connect(url, application_name="svc-harness-counter") as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where application_name = %s",
            (os.environ["PGAPPNAME"],),
        ).fetchone()
    return int(row[0])


results: list[Any] = []
report: dict[str, Any] = {"file": modal_app.__file__, "results": results}
if plan.get("cls"):
    # As the container does: one instance, its @enter hooks, the method per input, @exit.
    instance = getattr(modal_app, plan["cls"])._get_user_cls()()
    for flag in (
        _PartialFunctionFlags.ENTER_PRE_SNAPSHOT,
        _PartialFunctionFlags.ENTER_POST_SNAPSHOT,
    ):
        for hook in _find_callables_for_obj(instance, flag).values():
            hook()
    method = _find_callables_for_obj(instance, _PartialFunctionFlags.CALLABLE_INTERFACE)
    for args in plan["calls"]:
        results.append(method[plan["function"]](*args))
    if plan.get("count_connections"):
        report["connections"] = connections()
    for hook in _find_callables_for_obj(instance, _PartialFunctionFlags.EXIT).values():
        hook()
else:
    function = getattr(modal_app, plan["function"])
    for args in plan["calls"]:
        value = function.local(*args)
        if plan.get("health"):  # an ASGI app: serve one request through it
            from fastapi.testclient import TestClient

            with TestClient(value) as client:
                response = client.get("/health")
            value = {"status_code": response.status_code, "body": response.json()}
        results.append(value)
    if plan.get("count_connections"):
        report["connections"] = connections()
report["imported"] = sorted(m for m in ("torch", "so_vits_svc_fork") if m in sys.modules)
report["lookups"] = lookups
report["commits"] = len(commits)
print("HARNESS " + json.dumps(report, default=str))
