"""PAWHome domain package: the logic shared by the gateway's handlers and the workers.

One module per domain (users, auth, ...) plus the infrastructure they share (codec, errors,
database and Redis access, the outbox, events). Handlers and tasks call into it; it is the only
place that writes a domain's tables and emits its events.
"""
