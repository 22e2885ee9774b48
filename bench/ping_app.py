"""The baseline: a bare FastAPI app, served exactly like the real one."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
def ping() -> dict[str, bool]:
    return {"ok": True}
