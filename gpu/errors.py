"""Training and conversion failures with the code and message a person sees on the job."""


class JobFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class JobCanceled(Exception):
    """The job row left `running` (canceled, or reaped) while the worker was busy."""
