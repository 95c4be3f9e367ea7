"""User feedback (docs/feedback.md): users send feedback with images and device details and
read the staff's replies; admins list, search, reply, close and reopen.

`states` is the ticket state machine (the one place a status changes, every transition
recorded); `tickets` holds the writes and reads the REST endpoints call.
"""
