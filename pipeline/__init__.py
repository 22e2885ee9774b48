"""The core of svc-pipeline: settings, database, storage, keys, auth and the local stack."""
