"""Demo feedback for `make run`: each demo buyer has sent some, one answered, so the console's
feedback page has a queue to work on. Idempotent: a user with feedback gets no more."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.feedback import Feedback, FeedbackEvent, FeedbackReply

# (category, text, app version, device model, replied with)
DEMO_TICKETS = [
    ("bug", "在商城下单后，订单列表偶尔不显示刚付款的订单，下拉刷新后才出现。", "1.4.2",
     "iPhone 15", "感谢反馈！这是列表缓存的问题，已在 1.4.3 修复，请更新后再试。"),
    ("suggestion", "希望预约洗护时能选择指定的美容师，并看到他们的评价。", "1.4.2", "Mi 14", ""),
    ("service", "上周六的洗澡预约，门店迟到了 20 分钟，希望改进。", "1.4.1", "iPhone 13", ""),
]


async def seed_demo_feedback(session: AsyncSession, user_ids: list[int], admin_id: int) -> int:
    made = 0
    for n, user_id in enumerate(user_ids):
        if (await session.execute(select(Feedback.id).where(
                Feedback.user_id == user_id).limit(1))).first() is not None:
            continue
        for m, (category, text, version, model, answer) in enumerate(DEMO_TICKETS):
            if (n + m) % 2 and not answer:
                continue  # a different mix for each user
            sent = utcnow() - dt.timedelta(hours=30 - 5 * m - n)
            ticket = Feedback(user_id=user_id, category=category, text=text, media_ids=[],
                              contact="", app_version=version,
                              device={"model": model, "platform": "ios" if "iPhone" in model
                                      else "android"},
                              status="replied" if answer else "open", reply_count=0,
                              created_at=sent, updated_at=sent)
            session.add(ticket)
            await session.flush()
            session.add(FeedbackEvent(feedback_id=ticket.id, action="submit", from_status="",
                                      to_status="open", actor_type="user", actor_id=user_id,
                                      created_at=sent))
            if answer:
                at = sent + dt.timedelta(hours=2)
                session.add(FeedbackReply(feedback_id=ticket.id, staff_id=admin_id,
                                          text=answer, created_at=at))
                session.add(FeedbackEvent(feedback_id=ticket.id, action="reply",
                                          from_status="open", to_status="replied",
                                          actor_type="admin", actor_id=admin_id, created_at=at))
                ticket.reply_count, ticket.last_replied_at, ticket.updated_at = 1, at, at
            made += 1
    return made
