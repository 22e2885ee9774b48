"""The contracts: request and response bodies, job params and progress, the error body.

Pure Pydantic; nothing here does I/O.
"""
