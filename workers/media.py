"""Tasks of the media queue: turn an uploaded original into the files we serve
(pawhome/media/processing.py does the work; this module is the Celery entry point).

Idempotent and late-acked like every task: a redelivered or retried run of a media that is
already ready or failed does nothing, and a run interrupted half-way redoes the same keys.
"""
from __future__ import annotations

from celery import shared_task

from pawhome.integrations.storage import StorageError
from pawhome.media import processing
from workers import runtime
from workers.base import PERIODIC, TransientError


@shared_task(name="media.process", bind=True)
def process(self, media_id: int) -> str:
    """Check, strip and resize (or probe and poster) one media; returns its final status.

    Storage outages retry with backoff; on the last attempt the media is failed with the
    reason instead of staying in `processing` forever.
    """
    resources = runtime.resources()
    try:
        return runtime.run(processing.process_media(resources, int(media_id)))
    except StorageError as error:
        if int(self.request.retries or 0) >= int(self.max_retries or 0):
            return runtime.run(processing.fail_media(resources, int(media_id),
                                                     f"storage unavailable: {error}"))
        raise TransientError(str(error)) from error


@shared_task(name="media.purge_abandoned_uploads", **PERIODIC)
def purge_abandoned_uploads() -> int:
    """Beat: delete uploads never completed (MEDIA_UPLOAD_ABANDON_SECONDS) and fail them."""
    return runtime.run(processing.purge_abandoned_uploads(runtime.resources()))
