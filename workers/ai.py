"""Tasks of the ai queue: virtual pets generated from photos (pawhome/virtualpet/generation.py
does the work; this module is the Celery entry point) and the sweep of results nobody adopted.

Its own queue and worker program: a generation is CPU work of a second or more, and must not
queue behind media or hold up payments. Idempotent and late-acked like every task: a
redelivered run of a finished generation does nothing.
"""
from __future__ import annotations

from celery import shared_task

from pawhome.integrations.storage import StorageError
from pawhome.virtualpet import generation
from workers import runtime
from workers.base import PERIODIC, TransientError


@shared_task(name="ai.generate_pet", bind=True)
def generate_pet(self, generation_id: int) -> str:
    """Make a virtual pet from its photo; returns the generation's final status.

    Storage outages retry with backoff; on the last attempt the generation fails with the
    reason instead of staying `running` forever.
    """
    resources = runtime.resources()
    try:
        return runtime.run(generation.run_generation(resources, int(generation_id)))
    except StorageError as error:
        if int(self.request.retries or 0) >= int(self.max_retries or 0):
            return runtime.run(generation.fail_generation(
                resources, int(generation_id), f"storage unavailable: {error}"))
        raise TransientError(str(error)) from error


@shared_task(name="ai.expire_generations", **PERIODIC)
def expire_generations() -> int:
    """Beat: generations not adopted within VPET_GENERATION_KEEP_HOURS become expired."""
    return runtime.run(generation.expire_generations(runtime.resources()))
