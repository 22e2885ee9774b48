"""The embedded local stack: Postgres (pgserver), SeaweedFS's S3, a local token issuer and the
API, on 127.0.0.1 only. A composition root like `modal_app.py`: it names the API by string."""
