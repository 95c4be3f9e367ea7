"""Pet-services booking: providers, staff, services, schedules, slots, holds and
appointments (docs/booking.md)."""
