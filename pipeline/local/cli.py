"""`svc-local`: run the whole pipeline on this machine (`make dev` calls `svc-local up`)."""

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.local.realtime import WEBSOCKET_PATH
from pipeline.local.stack import DEV_EMAIL, LocalStack, PortTaken, StackConfig

app = typer.Typer(add_completion=False, help="The svc-pipeline local stack.")
console = Console()


def _print_running(stack: LocalStack, token: str, token_file: Path) -> None:
    assert stack.s3 is not None
    table = Table(title="svc-pipeline local stack", show_header=True)
    table.add_column("what")
    table.add_column("where")
    table.add_row("API", f"{stack.api_url}  (docs: {stack.api_url}/docs)")
    table.add_row("Web", stack.web_url)
    table.add_row("Postgres", stack.database_url)
    table.add_row("S3 (SeaweedFS)", f"{stack.s3.endpoint_url}  bucket {stack.config.bucket}")
    table.add_row(
        "Auth JWKS", f"{stack.issuer.issuer}/.well-known/jwks.json" if stack.issuer else ""
    )
    realtime = stack.supabase_url.replace("http", "ws", 1) + WEBSOCKET_PATH
    table.add_row("Realtime", realtime)
    table.add_row("Data", str(stack.config.root))
    console.print(table)
    console.print(f"Dev token for {DEV_EMAIL} (also in {token_file}):")
    console.print(token, soft_wrap=True)
    console.print(f'Try: curl -H "Authorization: Bearer $(cat {token_file})" {stack.api_url}/quota')
    console.print("Press Ctrl-C to stop.")


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(help="where the data lives")] = StackConfig.root,
    api_port: int = StackConfig.api_port,
    web_port: int = StackConfig.web_port,
    auth_port: int = StackConfig.auth_port,
    s3_base_port: int = StackConfig.s3_base_port,
) -> None:
    """Start Postgres, S3, the token issuer, the web page and the API; Ctrl-C stops them."""
    config = StackConfig(data_dir.resolve(), api_port, auth_port, web_port, s3_base_port)
    stack = LocalStack(config)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Ctrl-C stops it even when started from a non-interactive shell's background job, whose
    # children inherit SIGINT ignored (Python then never raises KeyboardInterrupt): the
    # stack, its Postgres and its S3 would run on with nothing left to stop them.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # The pieces' warnings (the relay's tail, for one) show in this terminal.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    try:
        stack.check_ports()
    except PortTaken as exc:
        console.print(f"[red]Cannot start the local stack.[/red] {exc}", soft_wrap=True)
        sys.exit(1)
    try:
        with console.status("Starting the local stack…"):
            stack.start()
        token = stack.dev_token()
        token_file = config.root / "dev-token"
        token_file.write_text(token)
        _print_running(stack, token, token_file)
        assert stack.api is not None
        stack.api.wait()
    except KeyboardInterrupt:
        console.print("Stopping…")
    finally:
        stack.stop()
    sys.exit(0)


@app.command()
def token(
    email: str = DEV_EMAIL,
    data_dir: Annotated[Path, typer.Option()] = StackConfig.root,
    ttl_seconds: int = 12 * 3600,
) -> None:
    """Print a token for a local user (created if new); the stack must have run once."""
    config = StackConfig(data_dir.resolve())
    stack = LocalStack(config)
    stack.start_database()
    from pipeline.local.issuer import LocalIssuer

    stack.issuer = LocalIssuer(
        config.root / "auth" / "es256.pem", f"http://127.0.0.1:{config.auth_port}"
    )
    typer.echo(stack.dev_token(email, ttl_seconds))


def main() -> None:
    app()
