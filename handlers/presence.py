"""GET /v1/users/{user_id}/presence: online and last seen, as the user's privacy allows."""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.identity import users


class PresenceHandler(ApiHandler):
    @endpoint(tags=("users",), summary="Whether a user is online, and when last seen",
              description="Hidden (online false, last_seen null, hidden true) when the user "
                          "turned off privacy_prefs.show_online or either user blocked the "
                          "other. A user who blocked the caller does not exist (404).")
    async def get(self, user_id: int) -> None:
        self.ok(await users.user_presence(self.r, self.user_id, user_id))


__all__ = ["PresenceHandler"]
