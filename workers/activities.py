"""Tasks of activities with registration (pawhome/activities/jobs.py, organising.py), on the
default queue (their names' first segment is no queue of its own): a pending cash
registration's seat freed at its deadline, a cancelled activity's registrations settled, the
registrants of a changed activity told, and the beat jobs (the unpaid sweep, reminders before
the start, finishing the past ones). Each is idempotent: a late or doubled run changes
nothing more.
"""
from __future__ import annotations

from celery import shared_task

from pawhome.activities import jobs, organising
from workers import runtime
from workers.base import PERIODIC


@shared_task(name="activities.expire_registration")
def expire_registration(registration_id: int) -> bool:
    """A pending cash registration's deadline: unpaid, its seat goes to the waitlist."""
    return runtime.run(jobs.expire_registration(runtime.resources(), registration_id))


@shared_task(name="activities.settle_cancelled")
def settle_cancelled(activity_id: int) -> int:
    """A cancelled activity's live registrations cancelled, told and paid back."""
    return runtime.run(organising.settle_cancelled(runtime.resources(), activity_id))


@shared_task(name="activities.tell_changed")
def tell_changed(activity_id: int) -> int:
    """A published activity's time or place changed: its live registrants told, once each."""
    return runtime.run(organising.tell_changed(runtime.resources(), activity_id))


@shared_task(name="activities.sweep", **PERIODIC)
def sweep() -> dict[str, int]:
    """Beat: unpaid seats past their deadline freed, due reminders sent (each once),
    published activities past their end finished."""
    async def run() -> dict[str, int]:
        resources = runtime.resources()
        return {"expired": await jobs.expire_unpaid(resources),
                "reminded": await jobs.send_reminders(resources),
                "finished": await jobs.finish_past(resources)}

    return runtime.run(run())
