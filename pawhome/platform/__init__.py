"""The platform layer: plumbing every domain uses and no domain owns (docs/architecture.md).

Database and Redis access, the JSON codec, the error table, the transactional outbox and the
task-dispatch interface, user event streams and live topics, presence, logging, paging and
cursors, migrations. Nothing here imports a domain package, `gateway`, `handlers` or
`workers`: what it needs from them is injected at start-up.
"""
