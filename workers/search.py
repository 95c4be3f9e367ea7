"""Tasks of the search queue: keep the search index in step with posts, users and topics.

`search.index` is enqueued through the outbox (pawhome.search.index.index_later) after a change
commits. It reads the row as it is now, so it is idempotent and order-safe: a late or
repeated run writes the same document, and a deleted or hidden row loses its document.
"""
from __future__ import annotations

from celery import shared_task, signals

from pawhome.search import index as search
from workers import runtime


@shared_task(name="search.index")
def index(doc_type: str, doc_id: int) -> str:
    """(Re)index one post, user or topic; returns "indexed" or "removed"."""
    return runtime.run(search.index_document(runtime.resources(), doc_type, doc_id))


@shared_task(name="search.reindex_batch")
def reindex_batch(doc_type: str, after_id: int = 0) -> int | None:
    """Rebuild part of the index (ops: `celery call search.reindex_batch --args '["post"]'`);
    each batch enqueues the next."""
    return runtime.run(search.reindex_batch(runtime.resources(), doc_type, after_id))


@signals.worker_process_init.connect
def _load_segmenter(**_: object) -> None:
    """Build the segmenter in each worker process before its first task, so the first index
    after a start does not pay for it."""
    search.segmenter()
