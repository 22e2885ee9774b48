"""The dispatcher on Modal: look the deployed functions up by name and spawn them; the
`FunctionCall` id goes on the job row so a cancel can reach the container.

`client` is the `modal` module; tests pass an object with the same three names."""

from typing import Any
from uuid import UUID


class ModalDispatcher:
    FUNCTIONS = {"train": "train", "probe": "probe", "singers": "singers"}
    CONVERTER = ("Converter", "convert")

    def __init__(self, app_name: str, environment: str | None = None, client: Any = None) -> None:
        if client is None:
            import modal as client
        self.client = client
        self.app_name = app_name
        self.environment = environment

    def spawn(self, kind: str, target_id: UUID) -> str:
        if kind == "convert":
            cls_name, method = self.CONVERTER
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
