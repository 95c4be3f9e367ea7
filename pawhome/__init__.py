"""PAWHome's domain package: the logic shared by the gateway's handlers and the workers.

One sub-package per domain (identity, community, messaging, media, moderation, search ...),
each the only writer of its tables and the only emitter of its events, over `platform` (the
plumbing every domain uses: database, cache, codec, errors, outbox, events) and
`integrations` (clients of outside services). Layers point down only; docs/architecture.md
draws them and says where a new domain goes.
"""
