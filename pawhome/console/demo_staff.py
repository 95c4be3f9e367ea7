"""The console's demo data: the demo staff accounts of embedded mode (`make run` gives the
demo admin and the demo merchant a console sign-in each, with a fresh random password on
every start, printed in the start-up banner; no other mode ever gets a known account), and a
few posts held for review so the moderation page has work to show."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.community import Post, Report
from models.staff import StaffAccount
from models.users import User
from pawhome.console import staff as staff_accounts
from pawhome.platform.resources import Resources

# login name, the demo user's openid (pawhome/demo.py), label
DEMO_STAFF = [
    ("admin", "demo-admin", "管理员"),
    ("merchant", "demo-merchant", "商家（萌宠小铺）"),
]


async def reset_demo_staff(resources: Resources) -> list[tuple[str, str, str]]:
    """(login, password, label) of each demo staff account, created if missing, its password
    replaced and lockout cleared. Embedded mode only."""
    if not resources.settings.embedded:
        raise RuntimeError("demo staff accounts exist in embedded mode only")
    out: list[tuple[str, str, str]] = []
    async with resources.db.session() as session, session.begin():
        for login, openid, label in DEMO_STAFF:
            user = (await session.execute(select(User).where(User.openid == openid))
                    ).scalar_one_or_none()
            if user is None:
                continue  # not seeded (make run seeds first)
            password = staff_accounts.generate_password()
            staff = await staff_accounts.find_staff(session, login)
            if staff is None:
                session.add(StaffAccount(
                    login=login, password_hash=staff_accounts.hash_password(password),
                    user_id=user.id, display_name=label, failed_logins=0, disabled=False))
            else:
                await staff_accounts.set_password(session, staff, password)
                staff.disabled = False
            out.append((login, password, label))
    return out


# -- a moderation queue to show (pawhome/demo.py runs this seeder) -----------------------------

# (author's openid, text, why the automatic check held it, reporter's openid or None)
DEMO_HELD_POSTS = [
    ("demo-user-2", "出售纯种布偶猫幼崽，加微信 cat-888 详聊，价格美丽！",
     "疑似广告：待人工复核", "demo-user-1"),
    ("demo-user-1", "今天带豆豆去公园，遇到一只超凶的大狗，吓死了 😱 大家遛狗一定要牵绳！",
     "文本机审不确定：待人工复核", None),
    ("demo-user-2", "<b>领养日</b> 周六 10 点，<script>alert('hi')</script> 欢迎来玩",
     "含可疑标记：待人工复核", None),
]


async def seed_moderation_queue(session: AsyncSession) -> int:
    """A few posts held for review (one reported) so the console's 内容审核 page has work
    on a first `make run`; left alone once they exist (matched by text)."""
    made = 0
    for openid, text, reason, reporter in DEMO_HELD_POSTS:
        author = (await session.execute(select(User).where(User.openid == openid))
                  ).scalar_one_or_none()
        if author is None:
            continue
        exists = await session.execute(select(Post.id).where(Post.author_id == author.id,
                                                             Post.text == text))
        if exists.first() is not None:
            continue
        post = Post(author_id=author.id, text=text, status="hidden", status_reason=reason)
        session.add(post)
        await session.flush()
        if reporter is not None:
            who = (await session.execute(select(User.id).where(User.openid == reporter))
                   ).scalar_one_or_none()
            if who is not None:
                session.add(Report(reporter_id=who, target_type="post", target_id=post.id,
                                   reason="ad", detail="卖猫广告"))
        made += 1
    return made
