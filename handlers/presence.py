"""GET /v1/users/{user_id}/presence: online and last seen, as the user's privacy allows."""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.platform import presence
from pawhome.identity import users


class PresenceHandler(ApiHandler):
    @endpoint(tags=("users",), summary="Whether a user is online, and when last seen",
              description="Hidden (online false, last_seen null, hidden true) when the user "
                          "turned off privacy_prefs.show_online or either user blocked the "
                          "other. A user who blocked the caller does not exist (404).")
    async def get(self, user_id: int) -> None:
        viewer = self.user_id
        async with self.r.db.session() as session:
            # 404 for unknown or banned users and for users who blocked the viewer.
            await users.public_profile(session, viewer, user_id)
            hidden = False
            if viewer != user_id:
                privacy = await users.privacy_of(session, user_id)
                hidden = not privacy.show_online or await users.is_blocked(session, viewer,
                                                                           user_id)
        if hidden:
            self.ok({"user_id": user_id, "online": False, "last_seen": None, "hidden": True})
            return
        cache = self.r.cache
        self.ok({"user_id": user_id, "online": await presence.is_online(cache, user_id),
                 "last_seen": await presence.last_seen(cache, user_id), "hidden": False})


__all__ = ["PresenceHandler"]
