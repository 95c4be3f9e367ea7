"""Community tables: pet cards, posts with boards and topics, comments, likes, favorites,
profile counters, browse history, reports, moderation checks and the search index."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow

SPECIES = ("dog", "cat", "rabbit", "bird", "other")
VISIBILITIES = ("public", "followers", "private")
# pending: waiting for moderation; visible; hidden: held for review; removed: taken down.
CONTENT_STATES = ("pending", "visible", "hidden", "removed")


class Pet(Base):
    """A user's real pet (a pet card)."""
    __tablename__ = "pets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                          index=True)
    name: Mapped[str] = mapped_column(String(32))
    species: Mapped[str] = mapped_column(String(16))
    breed: Mapped[str] = mapped_column(String(64), default="")
    gender: Mapped[int] = mapped_column(SmallInteger, default=0)  # 0 unknown, 1 male, 2 female
    birthday: Mapped[dt.date | None] = mapped_column(Date)
    weight_kg: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    neutered: Mapped[bool | None] = mapped_column(Boolean)
    avatar_media_id: Mapped[int | None] = mapped_column(BigInteger)
    bio: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Board(Base):
    """A section of the community (求助, 晒宠, 领养, 经验)."""
    __tablename__ = "boards"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(255), default="")
    sort: Mapped[int] = mapped_column(Integer, default=0)
    # Posts on this board may hide their author from everyone but admins (seed 003).
    allow_anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Topic(Base):
    """A #topic; names are unique case-insensitively (the table collation)."""
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    post_count: Mapped[int] = mapped_column(Integer, default=0)
    heat: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_post_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (
        Index("ix_posts_feed", "status", "visibility", "created_at"),
        Index("ix_posts_author_created", "author_id", "created_at"),
        Index("ix_posts_board_pinned_created", "board_id", "pinned_at", "created_at"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    author_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    board_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("boards.id"))
    text: Mapped[str] = mapped_column(Text)
    media_kind: Mapped[str] = mapped_column(String(8), default="none")  # none | image | video
    media_ids: Mapped[list] = mapped_column(JSON, default=list)  # ordered
    pet_types: Mapped[list] = mapped_column(JSON, default=list)  # subset of SPECIES
    pet_ids: Mapped[list] = mapped_column(JSON, default=list)
    location_name: Mapped[str] = mapped_column(String(64), default="")
    visibility: Mapped[str] = mapped_column(String(16), default="public")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    status_reason: Mapped[str] = mapped_column(String(255), default="")
    pinned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The author is shown to nobody but admins (a board that allows it; docs/community.md).
    is_anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    like_count: Mapped[int] = mapped_column(Integer, default=0)
    comment_count: Mapped[int] = mapped_column(Integer, default=0)
    favorite_count: Mapped[int] = mapped_column(Integer, default=0)
    share_count: Mapped[int] = mapped_column(Integer, default=0)
    view_count: Mapped[int] = mapped_column(BigInteger, default=0)
    hot_score: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    edited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class PostTopic(Base):
    __tablename__ = "post_topics"
    __table_args__ = (Index("ix_post_topics_topic_post", "topic_id", "post_id"),
                      MYSQL_TABLE_ARGS)

    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"),
                                         primary_key=True)
    topic_id: Mapped[int] = mapped_column(BigId, ForeignKey("topics.id", ondelete="CASCADE"),
                                          primary_key=True)


class Comment(Base):
    """A comment on a post, or a reply (parent_id = the top-level comment; one level)."""
    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_post_parent_created", "post_id", "parent_id",
                            "created_at"),
                      Index("ix_comments_post_parent_likes", "post_id", "parent_id",
                            "like_count"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                           index=True)
    parent_id: Mapped[int | None] = mapped_column(BigInteger)
    reply_to_user_id: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="visible")
    like_count: Mapped[int] = mapped_column(Integer, default=0)
    reply_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Mention(Base):
    """A user @mentioned in a post or comment: one row per source and user, so an edit that
    keeps a mention notifies nobody again. `notified_at` is set once the mention was decided
    (notified, or refused by blocks and privacy) when its source became visible."""
    __tablename__ = "mentions"
    __table_args__ = (Index("ix_mentions_user_created", "user_id", "created_at"),
                      MYSQL_TABLE_ARGS)

    source_type: Mapped[str] = mapped_column(String(16), primary_key=True)  # post | comment
    source_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    author_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Like(Base):
    """One like per user and target (post or comment): the primary key makes double taps
    a no-op."""
    __tablename__ = "likes"
    __table_args__ = (Index("ix_likes_user_created", "user_id", "created_at"), MYSQL_TABLE_ARGS)

    target_type: Mapped[str] = mapped_column(String(16), primary_key=True)  # post | comment
    target_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Favorite(Base):
    __tablename__ = "favorites"
    __table_args__ = (Index("ix_favorites_user_created", "user_id", "created_at"),
                      Index("ix_favorites_post_id", "post_id"), MYSQL_TABLE_ARGS)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"),
                                         primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserStats(Base):
    """Profile counters, written in the same transactions as the rows they count and
    reconciled by a periodic job."""
    __tablename__ = "user_stats"

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    followers: Mapped[int] = mapped_column(Integer, default=0)
    following: Mapped[int] = mapped_column(Integer, default=0)
    likes_received: Mapped[int] = mapped_column(Integer, default=0)
    posts: Mapped[int] = mapped_column(Integer, default=0)


class BrowseHistory(Base):
    __tablename__ = "browse_history"
    __table_args__ = (Index("ix_browse_history_user_viewed", "user_id", "viewed_at"),
                      MYSQL_TABLE_ARGS)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"),
                                         primary_key=True)
    viewed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Report(Base):
    """A user's report of a post, comment or user; one open report per reporter and target."""
    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("reporter_id", "target_type", "target_id"),
                      Index("ix_reports_status_created", "status", "created_at"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reporter_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    target_type: Mapped[str] = mapped_column(String(16))  # post | comment | user
    target_id: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|upheld|dismissed
    handled_by: Mapped[int | None] = mapped_column(BigInteger)
    handled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModerationCheck(Base):
    """One moderation verdict on a piece of content, from our filter, WeChat or an admin.
    WeChat's asynchronous image checks are matched back by trace_id."""
    __tablename__ = "moderation_checks"
    __table_args__ = (Index("ix_moderation_checks_target", "target_type", "target_id"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    target_type: Mapped[str] = mapped_column(String(16))  # post | comment | media | nickname
    target_id: Mapped[int] = mapped_column(BigInteger)
    # wordfilter | wechat_text | wechat_media | admin
    provider: Mapped[str] = mapped_column(String(16))
    trace_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done
    suggest: Mapped[str] = mapped_column(String(16), default="")  # pass | review | risky
    label: Mapped[str] = mapped_column(String(32), default="")
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SearchDocument(Base):
    """Word-segmented text of a post, user or topic: MariaDB FULLTEXT over `tokens` (MariaDB
    has no ngram parser, so the words are segmented before indexing); SQLite uses an FTS5
    table kept beside it (created by the migration)."""
    __tablename__ = "search_documents"
    __table_args__ = (Index("ix_search_documents_tokens", "tokens", mysql_prefix="FULLTEXT"),
                      MYSQL_TABLE_ARGS)

    doc_type: Mapped[str] = mapped_column(String(16), primary_key=True)  # post | user | topic
    doc_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tokens: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
