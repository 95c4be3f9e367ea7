"""Every domain module, imported once so their registrations are in place.

Domain modules register things when imported: hook connections (pawhome/platform/hooks.py),
event schemas, live-topic kinds, chat attachment checks. The composition roots (the gateway's
`make_app`, the Celery app, the demo seeder) import this module, so a worker that runs one
task has the same wiring as the gateway that serves every route. A new domain module that
registers anything is added here.
"""
from pawhome.community import (comments, counters, favorites, feeds, follows,  # noqa: F401
                               likes, pets, posts)
from pawhome.identity import auth, sms, tokens, users  # noqa: F401
from pawhome.integrations import storage, wechat  # noqa: F401
from pawhome.media import files, uploads  # noqa: F401
from pawhome.messaging import (chat, chat_writer, notifications,  # noqa: F401
                               subscribe_messages)
from pawhome.moderation import reports, reviews  # noqa: F401
from pawhome.search import index  # noqa: F401
