"""The dispatcher on Modal: look the deployed functions up by name and spawn them; the
`FunctionCall` id goes on the job row so a cancel can reach the container.

`client` is the `modal` module; tests pass an object with the same three names.

The functions are looked up in the Modal environment this container was deployed to (Modal
sets `MODAL_ENVIRONMENT` in every function container), so `modal deploy --env staging`
spawns staging's workers; `VC_MODAL_ENVIRONMENT` overrides it for a caller outside Modal."""

import os
from typing import Any
from uuid import UUID


def deployment_environment() -> str | None:
    """The Modal environment of the running deployment; None outside a Modal container."""
    return os.environ.get("MODAL_ENVIRONMENT") or None


class ModalDispatcher:
    FUNCTIONS = {
        "train": "train",
        "singers": "singers",
        "separate": "separate",
        "sweep_work": "sweep_work",
    }
    CLASSES = {
        "convert": ("Converter", "convert"),
        "speak": ("Converter", "speak"),  # text jobs share the warm conversion containers
        "probe": ("Prober", "probe"),
        "probe_reference": ("Prober", "probe_reference"),
        "instant": ("InstantConverter", "convert"),
    }

    def __init__(self, app_name: str, environment: str | None = None, client: Any = None) -> None:
        if client is None:
            import modal as client
        self.client = client
        self.app_name = app_name
        self.environment = environment or deployment_environment()

    def spawn(self, kind: str, target_id: UUID) -> str:
        if kind in self.CLASSES:
            cls_name, method = self.CLASSES[kind]
            cls = self.client.Cls.from_name(
                self.app_name, cls_name, environment_name=self.environment
            )
            call = getattr(cls(), method).spawn(str(target_id))
        elif kind in self.FUNCTIONS:
            function = self.client.Function.from_name(
                self.app_name, self.FUNCTIONS[kind], environment_name=self.environment
            )
            call = function.spawn(str(target_id))
        else:
            raise ValueError(f"no Modal function for {kind!r}")
        return str(call.object_id)

    def cancel(self, call_id: str) -> None:
        self.client.FunctionCall.from_id(call_id).cancel()
