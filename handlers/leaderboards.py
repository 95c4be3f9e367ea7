"""Leaderboard endpoints (virtual pet, seed 001): a board's page with my rank and my
neighbours, and the admin's rebuild from the database. Thin: each calls one function of
pawhome/virtualpet/leaderboards.py; docs/virtual-pet.md ("Leaderboards").
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.virtualpet import leaderboards

TAGS = ("virtual-pet",)
ADMIN_TAGS = ("admin",)
ADMIN = ("admin",)


class LeaderboardHandler(ApiHandler):
    @endpoint(query=leaderboards.BoardQuery, tags=TAGS,
              summary="A leaderboard (pet_level, user_points, friends; all-time or this "
                      "week): a page, my rank and the entries around me")
    async def get(self, kind: str) -> None:
        self.ok(await leaderboards.get_board(self.r, self.user_id, kind, self.query))


class AdminLeaderboardRebuildHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=ADMIN_TAGS,
              summary="Rebuild a leaderboard (all-time and this week) from the database")
    async def post(self, kind: str) -> None:
        self.ok(await leaderboards.admin_rebuild(self.r, kind))
