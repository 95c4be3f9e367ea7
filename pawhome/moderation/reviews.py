"""Content moderation: the synchronous word-filter screen, the reviews the moderation worker
runs (our filter, then WeChat content security) and WeChat's asynchronous image verdicts.
With the admins' decisions (pawhome/moderation/decisions.py), the one place that decides
whether a post, comment or image is shown.

States: pending -> visible | hidden (held for admin review) | removed. Posts move through
posts.set_status; comments and media are written here. docs/moderation.md has the rules.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import Comment, ModerationCheck, Post
from models.media import Media
from models.users import User
from pawhome.community import comments, counters, posts
from pawhome.integrations.storage import storage_for
from pawhome.integrations.wechat import WeChatClient
from pawhome.media import uploads
from pawhome.platform import events, wordfilter
from pawhome.platform.errors import WeChatError
from pawhome.platform.outbox import enqueue_task
from pawhome.platform.resources import Resources
from settings import Settings

log = logging.getLogger("pawhome.moderation.reviews")

SUGGESTS = ("pass", "review", "risky")
# msgSecCheck / mediaCheckAsync scenes: 1 profile, 2 comment, 3 forum, 4 social log.
SCENE_PROFILE, SCENE_COMMENT, SCENE_FORUM = 1, 2, 3
MEDIA_TYPE_IMAGE = 2


class CommentStatusEvent(BaseModel):
    """`comment.status`: the author's comment changed moderation state."""
    comment_id: int
    post_id: int
    status: Literal["pending", "visible", "hidden", "removed"]
    reason: str = ""


events.register_event_schema("comment.status", CommentStatusEvent)

# The staff's live moderation queue (the web console watches it; pawhome/console/live.py
# authorises admins): an item joined the queue, or an admin decided one.
STAFF_MODERATION_TOPIC = "staff:moderation"


class ModerationQueueEvent(BaseModel):
    """`moderation.queued` / `moderation.decided` on the staff:moderation topic."""
    target_type: Literal["post", "comment"]
    target_id: int
    status: Literal["pending", "visible", "hidden", "removed"]


events.register_event_schema("moderation.queued", ModerationQueueEvent)
events.register_event_schema("moderation.decided", ModerationQueueEvent)


def tell_staff(session: AsyncSession, event_type: str, target_type: str, target_id: int,
               status: str) -> None:
    """Tell the console's moderation pages once the caller's transaction commits."""
    events.emit_to_topic(session, STAFF_MODERATION_TOPIC, event_type,
                         {"target_type": target_type, "target_id": target_id, "status": status})


# The synchronous screen every domain applies to user text before it is stored
# (pawhome/platform/wordfilter.py); the reviews below come after.
screen_text = wordfilter.screen_text


# -- enqueueing (through the outbox, in the submitting transaction) ---------------------------
# Posts, comments and images ask for a review through hooks they declare and run when content
# is submitted; these are connected to them, so the review task commits with the content.


@posts.post_submitted.connect
async def review_post_later(session: AsyncSession, post_id: int) -> None:
    enqueue_task(session, "moderation.review_post", int(post_id))


@comments.comment_submitted.connect
async def review_comment_later(session: AsyncSession, comment_id: int) -> None:
    enqueue_task(session, "moderation.review_comment", int(comment_id))


@uploads.needs_review.connect
async def review_media_later(session: AsyncSession, media_id: int) -> None:
    enqueue_task(session, "moderation.review_media", int(media_id))


# -- verdicts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextVerdict:
    suggest: str  # pass | review | risky
    label: str
    provider: str


def text_digest(text: str) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


def fresh_openid(settings: Settings, user: User | None,
                 now: dt.datetime | None = None) -> str | None:
    """The user's openid if WeChat will check content for it, else None. WeChat checks only
    for an openid that opened the mini-program within the last two hours; the last login of
    a user with an openid is our signal for that."""
    if user is None or not user.openid or user.last_login_at is None:
        return None
    last = user.last_login_at
    if last.tzinfo is not None:  # our timestamps are naive UTC
        last = last.astimezone(dt.UTC).replace(tzinfo=None)
    age = (now or utcnow()) - last
    if age > dt.timedelta(seconds=settings.moderation_openid_fresh_seconds):
        return None
    return user.openid


def _wechat_suggest(reply: dict[str, Any]) -> tuple[str, str]:
    result = reply.get("result") if isinstance(reply.get("result"), dict) else {}
    suggest = str(result.get("suggest") or "")
    if suggest not in SUGGESTS:
        suggest = "review"  # an answer we do not understand is never a pass
    return suggest, str(result.get("label") or "")


async def _recorded_text_verdict(session: AsyncSession, target_type: str, target_id: int,
                                 digest: str) -> TextVerdict | None:
    rows = (await session.execute(
        select(ModerationCheck).where(
            ModerationCheck.target_type == target_type, ModerationCheck.target_id == target_id,
            ModerationCheck.provider.in_(("wordfilter", "wechat_text")),
            ModerationCheck.state == "done")
        .order_by(ModerationCheck.id.desc()))).scalars()
    for row in rows:
        if (row.detail or {}).get("sha256") == digest:
            return TextVerdict(row.suggest, row.label, row.provider)
    return None


async def check_text(resources: Resources, target_type: str, target_id: int, text: str,
                     author_id: int, scene: int) -> TextVerdict:
    """The verdict on this exact text of this target: a recorded one if the text was checked
    before (retries and re-reviews cost no WeChat quota), else our filter and then WeChat's
    msgSecCheck, recorded as a ModerationCheck. Raises WeChatUnavailable (transient)."""
    digest = text_digest(text)
    async with resources.db.session() as session:
        known = await _recorded_text_verdict(session, target_type, target_id, digest)
        if known is not None:
            return known
        author = await session.get(User, author_id)
    words = wordfilter.check(text)
    detail: dict[str, Any] = {"sha256": digest}
    if words.hard:
        verdict = TextVerdict("risky", "prohibited_word", "wordfilter")
        detail["words"] = words.hard
    elif words.soft:
        verdict = TextVerdict("review", "soft_word", "wordfilter")
        detail["words"] = words.soft
    elif not resources.settings.moderation_wechat_enabled:
        verdict = TextVerdict("pass", "", "wordfilter")
    elif (openid := fresh_openid(resources.settings, author)) is None:
        # WeChat would refuse the check: our filter found nothing, an admin decides.
        verdict = TextVerdict("review", "unverified", "wordfilter")
    else:
        verdict, detail = await _msg_sec_check(resources, openid, text, scene, detail)
    async with resources.db.session() as session, session.begin():
        session.add(ModerationCheck(
            target_type=target_type, target_id=target_id, provider=verdict.provider,
            state="done", suggest=verdict.suggest, label=verdict.label[:32], detail=detail,
            decided_at=utcnow()))
    return verdict


async def _msg_sec_check(resources: Resources, openid: str, text: str, scene: int,
                         detail: dict[str, Any]) -> tuple[TextVerdict, dict[str, Any]]:
    try:
        reply = await WeChatClient(resources).call("POST", "/wxa/msg_sec_check", json={
            "version": 2, "openid": openid, "scene": scene, "content": text})
    except WeChatError as error:
        if error.status >= 500 or error.status == 429:
            raise  # unreachable or rate limited: the task retries
        # WeChat refused the request itself (e.g. the openid is unknown to it).
        return TextVerdict("review", "wechat_refused", "wordfilter"), \
            {**detail, "error": error.message[:200]}
    suggest, label = _wechat_suggest(reply)
    return TextVerdict(suggest, label, "wechat_text"), \
        {**detail, "trace_id": str(reply.get("trace_id") or "")}


def _media_url(resources: Resources, media: Media) -> str | None:
    """A URL WeChat can fetch: the largest JPEG variant (under WeChat's size limit) or a
    video's poster, else an image's original."""
    found = uploads.jpeg_variant(media)
    key = found[1] if found else (media.storage_key if media.kind == "image" else None)
    return storage_for(resources.settings).public_url(key) if key else None


# How long one review may hold an image's check to itself (the WeChat call has its own timeout).
MEDIA_CHECK_CLAIM_SECONDS = 60


async def review_media(resources: Resources, media_id: int) -> str:
    """Start the moderation of one ready image (or a video's poster): WeChat's asynchronous
    check, whose verdict arrives at the push callback; without a fresh openid the image is
    marked `review` for an admin. Returns the media's moderation state.

    Two reviews of one image can run at once (the image's own task, and a post's review that
    starts the checks of its images): the first claims the image in Redis for the time of
    its WeChat call, and a second finds the claim and answers "pending", so WeChat is asked
    once (its quota is per call). A failed call releases the claim; its task retries."""
    claim = resources.cache.key("moderation", "media-check", int(media_id))
    if not await resources.cache.redis.set(claim, b"1", nx=True, ex=MEDIA_CHECK_CLAIM_SECONDS):
        return "pending"  # another review is asking WeChat about this image right now
    try:
        return await _check_media(resources, media_id)
    finally:
        await resources.cache.redis.delete(claim)


async def _check_media(resources: Resources, media_id: int) -> str:
    async with resources.db.session() as session:
        media = await session.get(Media, media_id)
        if media is None:
            return "missing"
        if media.moderation != "pending" or media.status != "ready":
            return media.moderation
        waiting = (await session.execute(select(ModerationCheck.id).where(
            ModerationCheck.target_type == "media", ModerationCheck.target_id == media_id,
            ModerationCheck.state == "pending").limit(1))).first()
        if waiting is not None:
            return "pending"
        owner = await session.get(User, media.owner_id)
        url = _media_url(resources, media)
    settings = resources.settings
    if not settings.moderation_wechat_enabled:
        return await apply_media_verdict(resources, media_id, "pass", "", "wordfilter")
    openid = fresh_openid(settings, owner)
    if url is None or openid is None:
        return await apply_media_verdict(resources, media_id, "review",
                                         "unverified" if url else "no_image", "wordfilter")
    try:
        reply = await WeChatClient(resources).call("POST", "/wxa/media_check_async", json={
            "media_url": url, "media_type": MEDIA_TYPE_IMAGE, "version": 2,
            "scene": SCENE_FORUM, "openid": openid})
    except WeChatError as error:
        if error.status >= 500 or error.status == 429:
            raise
        return await apply_media_verdict(resources, media_id, "review", "wechat_refused",
                                         "wordfilter")
    trace_id = str(reply.get("trace_id") or "")
    if not trace_id:
        return await apply_media_verdict(resources, media_id, "review", "wechat_no_trace",
                                         "wordfilter")
    async with resources.db.session() as session, session.begin():
        session.add(ModerationCheck(target_type="media", target_id=media_id,
                                    provider="wechat_media", trace_id=trace_id[:64],
                                    state="pending", detail={"url": url}))
    return "pending"


async def apply_media_verdict(resources: Resources, media_id: int, suggest: str, label: str,
                              provider: str, trace_id: str | None = None,
                              detail: dict[str, Any] | None = None) -> str:
    """Record an image verdict and re-evaluate the posts that use the image: a risky image
    takes down every post showing it; otherwise pending posts are reviewed again."""
    async with resources.db.session() as session, session.begin():
        media = (await session.execute(select(Media).where(Media.id == media_id)
                                       .with_for_update())).scalar_one_or_none()
        if media is None:
            return "missing"
        check = None
        if trace_id:
            check = (await session.execute(select(ModerationCheck).where(
                ModerationCheck.trace_id == trace_id).with_for_update())).scalar_one_or_none()
            if check is not None and check.state == "done":
                return media.moderation  # answered meanwhile (a repeated or a late push)
        if check is None:
            check = ModerationCheck(target_type="media", target_id=media_id, provider=provider,
                                    trace_id=trace_id)
            session.add(check)
        check.state, check.suggest, check.label = "done", suggest, label[:32]
        check.detail = {**(check.detail or {}), **(detail or {})}
        check.decided_at = utcnow()
        media.moderation = suggest
        await _after_media_verdict(session, media, suggest, label)
        return suggest


async def _posts_using_media(session: AsyncSession, media: Media) -> list[Post]:
    # Only the owner can attach an image, so the owner's live posts are the candidates;
    # JSON membership is checked here to work on MariaDB and SQLite alike.
    rows = (await session.execute(select(Post).where(
        Post.author_id == media.owner_id, Post.deleted_at.is_(None),
        Post.status != "removed"))).scalars()
    return [p for p in rows if media.id in [int(m) for m in (p.media_ids or [])]]


# Other content that shows images hears each image verdict too, in the verdict's transaction
# (products: pawhome/moderation/product_reviews.py), with (session, media, suggest, label).
MediaVerdictFollower = Callable[[AsyncSession, Media, str, str], Awaitable[None]]
_media_verdict_followers: list[MediaVerdictFollower] = []


def follow_media_verdicts(follower: MediaVerdictFollower) -> MediaVerdictFollower:
    """Register a follower of image verdicts (usable as a decorator); once only."""
    if follower not in _media_verdict_followers:
        _media_verdict_followers.append(follower)
    return follower


async def _after_media_verdict(session: AsyncSession, media: Media, suggest: str,
                               label: str) -> None:
    for post in await _posts_using_media(session, media):
        if suggest == "risky":
            await posts.set_status(session, post.id, "removed", _reason("risky", label))
        elif post.status == "pending":
            await review_post_later(session, post.id)
    for follower in _media_verdict_followers:
        await follower(session, media, suggest, label)


# Review verdicts that mean "nobody could check this", not "a check found something".
UNVERIFIED_LABELS = ("unverified", "wechat_refused", "wechat_timeout")


async def expire_media_checks(resources: Resources, now: dt.datetime | None = None,
                              batch: int = 100) -> int:
    """Send images whose WeChat verdict never came (MODERATION_MEDIA_CHECK_TIMEOUT_SECONDS
    after the check was asked) to the admin review queue, label `wechat_timeout`: a lost
    push must not leave an image, and the posts showing it, pending for ever. A verdict that
    arrives afterwards finds its check answered and is ignored. Returns how many expired."""
    cutoff = (now or utcnow()) - dt.timedelta(
        seconds=resources.settings.moderation_media_check_timeout_seconds)
    async with resources.db.session() as session:
        due = (await session.execute(select(ModerationCheck.target_id, ModerationCheck.trace_id)
                                     .where(ModerationCheck.provider == "wechat_media",
                                            ModerationCheck.state == "pending",
                                            ModerationCheck.created_at < cutoff)
                                     .order_by(ModerationCheck.id).limit(batch))).all()
    for media_id, trace_id in due:
        await apply_media_verdict(resources, media_id, "review", "wechat_timeout",
                                  "wechat_media", trace_id=trace_id)
    return len(due)


def reason_text(suggest: str, label: str) -> str:
    """The reason a verdict gives the author ("risky content (porn)", "held for review")."""
    return _reason(suggest, label)


def _reason(suggest: str, label: str) -> str:
    if suggest == "risky":
        return f"risky content ({label})" if label else "risky content"
    if suggest == "review":
        return f"held for review ({label})" if label else "held for review"
    return ""


# -- posts ---------------------------------------------------------------------------------------


def decide(text: TextVerdict, media_states: list[str]) -> tuple[str, str] | None:
    """The post's state from its text verdict and its images' moderation states, or None to
    keep waiting (an image verdict is still due). Risky anywhere wins; then review; a post
    is visible only when its text passed and every image passed."""
    if text.suggest == "risky":
        return "removed", _reason("risky", text.label)
    if "risky" in media_states:
        return "removed", _reason("risky", "image")
    if text.suggest == "review":
        return "hidden", _reason("review", text.label)
    if "review" in media_states or "missing" in media_states:
        return "hidden", _reason("review", "image")
    if any(state != "pass" for state in media_states):
        return None
    return "visible", ""


async def review_post(resources: Resources, post_id: int) -> str:
    """The moderation task of a post (after create and edit, and again when an image verdict
    arrives). Idempotent: a post that is no longer pending is left alone, and verdicts on the
    same text are reused. Returns the post's state afterwards."""
    async with resources.db.session() as session:
        post = await session.get(Post, post_id)
        if post is None or post.deleted_at is not None:
            return "missing"
        if post.status != "pending":
            return post.status
        text, author_id = post.text, post.author_id
        media_ids = [int(m) for m in (post.media_ids or [])]
    verdict = await check_text(resources, "post", post_id, text, author_id, SCENE_FORUM)
    if verdict.suggest == "pass":
        for media_id in media_ids:  # start the image checks not yet started
            await review_media(resources, media_id)
    async with resources.db.session() as session, session.begin():
        post = (await session.execute(select(Post).where(Post.id == post_id)
                                      .with_for_update())).scalar_one_or_none()
        if post is None or post.deleted_at is not None:
            return "missing"
        if post.status != "pending" or text_digest(post.text) != text_digest(text):
            return post.status  # decided meanwhile, or edited (its own review follows)
        found = {m.id: m.moderation for m in (await session.execute(
            select(Media).where(Media.id.in_(media_ids)))).scalars()} if media_ids else {}
        outcome = decide(verdict, [found.get(m, "missing") for m in media_ids])
        if outcome is None:
            return "pending"
        status, reason = outcome
        await posts.set_status(session, post_id, status, reason)
        if status == "hidden":
            tell_staff(session, "moderation.queued", "post", post_id, status)
        return status


# -- comments ------------------------------------------------------------------------------------


async def set_comment_status(session: AsyncSession, comment: Comment, status: str,
                             reason: str = "") -> bool:
    """Move a comment to a moderation state (comments.set_status keeps the counters exact)
    and tell its author; False if it was there already. Caller commits, then publishes the
    post's counters (counters.publish_post_counters)."""
    if comment.status == status:
        return False
    await comments.set_status(session, comment.id, status)
    events.emit_to_user(session, comment.author_id, "comment.status", {
        "comment_id": comment.id, "post_id": comment.post_id, "status": status,
        "reason": reason[:255]})
    return True


async def review_comment(resources: Resources, comment_id: int) -> str:
    """The moderation task of a comment. Comments are shown at once (status visible, or
    pending if the comment module held it for soft words); this review hides one whose
    verdict is review, removes a risky one, and publishes a pending one that passed. Without
    a fresh openid our filter alone decides (a clean comment stays up). Returns the state."""
    async with resources.db.session() as session:
        comment = await session.get(Comment, comment_id)
        if comment is None or comment.deleted_at is not None:
            return "missing"
        if comment.status not in ("pending", "visible"):
            return comment.status
        text, author_id = comment.text, comment.author_id
    verdict = await check_text(resources, "comment", comment_id, text, author_id,
                               SCENE_COMMENT)
    status = {"pass": "visible", "review": "hidden", "risky": "removed"}[verdict.suggest]
    if verdict.label in UNVERIFIED_LABELS:
        # Comments stay up unless a check found something: without WeChat's verdict our own
        # filter (which found nothing) decides, and reports catch the rest.
        status = "visible"
    async with resources.db.session() as session, session.begin():
        comment = (await session.execute(select(Comment).where(Comment.id == comment_id)
                                         .with_for_update())).scalar_one_or_none()
        if comment is None or comment.deleted_at is not None:
            return "missing"
        if comment.status not in ("pending", "visible"):
            return comment.status  # an admin decided meanwhile
        changed = await set_comment_status(session, comment, status,
                                           _reason(verdict.suggest, verdict.label))
        post_id = comment.post_id
    if changed:
        await _publish_post_counters(resources, post_id)
    return status


async def _publish_post_counters(resources: Resources, post_id: int) -> None:
    await counters.publish_post_counters(resources, post_id)


# -- WeChat's push (wxa_media_check) --------------------------------------------------------------


def push_signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's message-push signature: sha1 of the sorted token, timestamp and nonce."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def push_signature_valid(settings: Settings, signature: str, timestamp: str, nonce: str) -> bool:
    if not signature or not timestamp or not nonce:
        return False
    expected = push_signature(settings.wechat_push_token, timestamp, nonce)
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    return hmac.compare_digest(expected.encode(), signature.lower().encode())


async def handle_push(resources: Resources, message: dict[str, Any]) -> str:
    """A verified push message. `wxa_media_check` is matched to its check by trace_id;
    anything else, or an unknown or already answered trace_id, is ignored. Returns what
    happened: applied, ignored, duplicate."""
    if message.get("Event") != "wxa_media_check":
        return "ignored"
    trace_id = str(message.get("trace_id") or "")
    if not trace_id:
        return "ignored"
    async with resources.db.session() as session:
        check = (await session.execute(select(ModerationCheck).where(
            ModerationCheck.trace_id == trace_id))).scalar_one_or_none()
    if check is None or check.target_type != "media":
        return "ignored"
    if check.state == "done":
        return "duplicate"  # WeChat retries a push it thinks failed
    if message.get("errcode") not in (None, 0):
        suggest, label = "review", f"wechat_errcode_{message.get('errcode')}"
    else:
        suggest, label = _wechat_suggest(message)
    await apply_media_verdict(resources, check.target_id, suggest, label, "wechat_media",
                              trace_id=trace_id,
                              detail={"push_detail": message.get("detail") or []})
    return "applied"
