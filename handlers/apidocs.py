"""`python -m handlers.apidocs` (make openapi): write docs/openapi.json and docs/errors.md
from the route table, as GET /v1/openapi.json serves it (gateway/openapi.py builds both)."""
from __future__ import annotations

from gateway.openapi import write_docs
from handlers import ROUTES

if __name__ == "__main__":
    for written in write_docs(ROUTES):
        print(f"wrote {written}")
