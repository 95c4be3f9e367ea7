"""The search engine: full-text search that works for Chinese (docs/search.md).

Domains make their rows searchable with `register_document` (posts and topics:
pawhome/community/post_search.py; users: pawhome/identity/user_search.py), ask for a row to be
re-indexed with `index_later` in the transaction that changed it, and query with `match`.

Text is segmented into words (rjieba: the jieba dictionary and algorithm in Rust) and each
word is stored hex-encoded ("w" + hex of its UTF-8), because MariaDB's FULLTEXT index drops
tokens under 3 characters and stopwords, and would never index 柯基 or "go" as they are.
MariaDB matches them with MATCH ... AGAINST in boolean mode; SQLite (embedded) with FTS5.
"""
from __future__ import annotations

import asyncio
import html
import logging
import threading
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import delete, literal_column, select, text
from sqlalchemy.dialects.mysql import match as mysql_match
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from models.base import utcnow
from models.community import SearchDocument
from pawhome.platform import outbox
from pawhome.platform.cache import UNAVAILABLE_ERRORS, Cache
from pawhome.platform.errors import ValidationFailed, field_error
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.search.index")

DOC_TYPES = ("post", "user", "topic", "product")
WORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "search_words.txt"
# InnoDB ignores tokens over innodb_ft_max_token_size (84) characters: "w" + 2 x 41 bytes.
MAX_WORD_BYTES = 41
# A TEXT column holds 65,535 bytes; tokens are ASCII, so characters = bytes.
MAX_TOKENS_CHARS = 60_000
# Pet-type tags are searchable by their Chinese names too.
PET_TYPE_WORDS = {"dog": "dog 狗 狗狗", "cat": "cat 猫 猫咪", "rabbit": "rabbit 兔 兔子",
                  "bird": "bird 鸟", "other": ""}


# -- segmentation ------------------------------------------------------------------------------
_segmenter = None
_segmenter_lock = threading.Lock()


def segmenter():
    """The process's segmenter, built on first use (~0.2 s: the dictionary is compiled in).
    Call `ready()` from the event loop instead: it builds it on a thread."""
    global _segmenter
    if _segmenter is None:
        with _segmenter_lock:
            if _segmenter is None:
                import rjieba

                jieba = rjieba.Jieba()
                for line in WORDS_FILE.read_text(encoding="utf-8").splitlines():
                    word = line.strip()
                    if word and not word.startswith("#"):
                        jieba.add_word(word, None, None)
                _segmenter = jieba
    return _segmenter


async def ready() -> None:
    """Make sure the segmenter is loaded without blocking the event loop."""
    if _segmenter is None:
        await asyncio.get_running_loop().run_in_executor(None, segmenter)


def normalize(value: str) -> str:
    """Full-width to half-width, compatibility forms folded, case folded."""
    return unicodedata.normalize("NFKC", value).casefold()


def _searchable(word: str) -> bool:
    return any(ch.isalnum() for ch in word) and len(word.encode()) <= MAX_WORD_BYTES


def _is_cjk(word: str) -> bool:
    return any(unicodedata.east_asian_width(ch) in "WF" and ch.isalnum() for ch in word)


def encode_word(word: str) -> str:
    """The token stored for a word: >= 3 characters, never a stopword, ASCII only."""
    return "w" + word.encode().hex()


def encode_filter(name: str, value: str) -> str:
    """A token that only filters (pet type, topic): a different prefix, so no word equals it."""
    return "f" + f"{name}:{normalize(value)}".encode().hex()


def document_tokens(texts: list[str], filters: Sequence[tuple[str, str]] = ()) -> str:
    """The `tokens` value of a document: filter tokens, then every dictionary word and CJK
    character found anywhere in the text once (so a query word split differently by its
    context still matches), then the search-mode words in order, repeats kept (relevance
    counts them)."""
    seg = segmenter()
    stream: list[str] = []
    extras: dict[str, None] = {}
    for value in texts:
        if not value:
            continue
        norm = normalize(value)
        stream.extend(w for w in seg.cut_for_search(norm) if _searchable(w))
        extras.update((w, None) for w in seg.cut_all(norm) if _searchable(w))
    seen = set(stream)
    tokens = [encode_filter(name, value) for name, value in filters]
    tokens += [encode_word(w) for w in extras if w not in seen]
    tokens += [encode_word(w) for w in stream]
    joined = " ".join(tokens)
    if len(joined) > MAX_TOKENS_CHARS:
        joined = joined[:MAX_TOKENS_CHARS].rsplit(" ", 1)[0]
    return joined


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query: the cleaned text (what recent searches store) and its words."""
    text: str
    words: tuple[str, ...]

    def _clause(self, word: str, fts: bool) -> str:
        token = encode_word(word)
        # A word the dictionary does not know came from the HMM and may be cut differently
        # inside a post: accept the word, or all of its characters.
        if len(word) > 1 and _is_cjk(word) and not segmenter().has_word(word):
            chars = [encode_word(ch) for ch in word if _searchable(ch)]
            if fts:
                return f"({token} OR ({' AND '.join(chars)}))"
            return f"({token} ({' '.join('+' + c for c in chars)}))"
        return token

    def boolean_mode(self, filters: Sequence[str] = ()) -> str:
        """MariaDB: MATCH(tokens) AGAINST(<this> IN BOOLEAN MODE); every word required."""
        return " ".join(["+" + self._clause(w, False) for w in self.words]
                        + ["+" + f for f in filters])

    def fts5(self, filters: Sequence[str] = ()) -> str:
        """SQLite: search_fts MATCH <this>."""
        return " AND ".join([self._clause(w, True) for w in self.words] + list(filters))


def parse_query(settings: Any, raw: str) -> SearchQuery:
    """Clean and segment a query; 422 (field q) when empty, too long or too many words."""
    cleaned = " ".join((raw or "").split())
    if not cleaned:
        raise ValidationFailed(errors=[field_error("q", "must not be empty")])
    if len(cleaned) > settings.search_query_max_chars:
        raise ValidationFailed(errors=[field_error(
            "q", f"at most {settings.search_query_max_chars} characters")])
    words: dict[str, None] = {}
    for word in segmenter().cut(normalize(cleaned)):
        if _searchable(word.strip()):
            words[word.strip()] = None
    if not words:
        raise ValidationFailed(errors=[field_error("q", "has no searchable words")])
    if len(words) > settings.search_query_max_words:
        raise ValidationFailed(errors=[field_error(
            "q", f"at most {settings.search_query_max_words} words")])
    return SearchQuery(cleaned, tuple(words))


# -- snippets ---------------------------------------------------------------------------------
def highlight(value: str, words: tuple[str, ...] | list[str], width: int = 80) -> str:
    """An HTML-escaped window of about `width` characters of `value` around the best cluster
    of matched words, each match wrapped in <em></em>; "…" marks a cut."""
    norm_chars: list[str] = []
    owner: list[int] = []  # normalised position -> original position
    for index, ch in enumerate(value):
        folded = normalize(ch)
        norm_chars.append(folded)
        owner.extend([index] * len(folded))
    norm = "".join(norm_chars)
    spans: list[tuple[int, int]] = []
    for word in words:
        start = norm.find(word)
        while start >= 0 and word:
            spans.append((owner[start], owner[start + len(word) - 1] + 1))
            start = norm.find(word, start + len(word))
    spans.sort()
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    lo, hi = 0, min(len(value), width)
    if merged and len(value) > width:
        # The window holding the most matches, starting a little before its first one.
        lead = min(width // 4, 20)
        best = max(merged, key=lambda s: sum(1 for o in merged
                                             if o[0] >= s[0] and o[1] <= s[0] - lead + width))
        lo = max(0, min(best[0] - lead, len(value) - width))
        hi = min(len(value), lo + width)
    out = ["…"] if lo > 0 else []
    cursor = lo
    for start, end in merged:
        start, end = max(start, lo), min(end, hi)
        if start >= end:
            continue
        out.append(html.escape(value[cursor:start]))
        out.append("<em>" + html.escape(value[start:end]) + "</em>")
        cursor = end
    out.append(html.escape(value[cursor:hi]))
    if hi < len(value):
        out.append("…")
    return " ".join("".join(out).split()) if "\n" in value or "\r" in value else "".join(out)


# -- indexing ---------------------------------------------------------------------------------
def index_later(session: AsyncSession, doc_type: str, doc_id: int) -> None:
    """Re-index a post, user, topic or product once this transaction commits (the search.index task
    reads the row then, so call it after any change that affects what is searchable)."""
    if doc_type not in DOC_TYPES:
        raise ValueError(f"unknown search document type {doc_type!r}")
    outbox.enqueue_task(session, "search.index", doc_type, int(doc_id))


def _is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


# Posts, users and topics numbered their FTS rows doc_id * 3 + n before other types came;
# types added since (products) count down from -1, so no existing index needs rebuilding.
_FIRST_TYPES = 3
_LATER_TYPES_STRIDE = 16


def _fts_rowid(doc_type: str, doc_id: int) -> int:
    # One FTS5 row per document, found by rowid rather than a scan of UNINDEXED columns.
    position = DOC_TYPES.index(doc_type)
    if position < _FIRST_TYPES:
        return doc_id * _FIRST_TYPES + position
    return -(doc_id * _LATER_TYPES_STRIDE + position - _FIRST_TYPES) - 1


@dataclass(frozen=True)
class DocumentType:
    """A kind of searchable document: its source table and how to read one row's tokens
    (None when the row is not searchable now: deleted, hidden, private)."""
    name: str
    model: Any
    read: Callable[[AsyncSession, int], Awaitable[str | None]]


_TYPES: dict[str, DocumentType] = {}


def register_document(name: str, model: Any,
                      read: Callable[[AsyncSession, int], Awaitable[str | None]]) -> None:
    """A domain makes its rows searchable (called when its module is imported): the engine
    keeps the index; the domain says what a row's document is. `name` must be one of
    DOC_TYPES (their order fixes the SQLite FTS rowids: add new types at the end)."""
    if name not in DOC_TYPES:
        raise ValueError(f"unknown search document type {name!r}: add it to DOC_TYPES")
    _TYPES[name] = DocumentType(name, model, read)


def _document_type(name: str) -> DocumentType:
    found = _TYPES.get(name)
    if found is None:
        raise ValueError(f"unknown search document type {name!r}")
    return found


async def write_document(session: AsyncSession, doc_type: str, doc_id: int,
                         tokens: str | None) -> None:
    """Upsert (or with no tokens, delete) a document, and its FTS5 twin on SQLite."""
    sqlite = _is_sqlite(session)
    if sqlite:
        await session.execute(text("DELETE FROM search_fts WHERE rowid = :rowid"),
                              {"rowid": _fts_rowid(doc_type, doc_id)})
    if not tokens:
        await session.execute(delete(SearchDocument).where(
            SearchDocument.doc_type == doc_type, SearchDocument.doc_id == doc_id))
        return
    values = {"doc_type": doc_type, "doc_id": doc_id, "tokens": tokens, "updated_at": utcnow()}
    if sqlite:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(SearchDocument).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["doc_type", "doc_id"],
            set_={"tokens": statement.excluded.tokens,
                  "updated_at": statement.excluded.updated_at})
        await session.execute(statement)
        await session.execute(
            text("INSERT INTO search_fts (rowid, tokens, doc_type, doc_id) "
                 "VALUES (:rowid, :tokens, :doc_type, :doc_id)"),
            {"rowid": _fts_rowid(doc_type, doc_id), "tokens": tokens, "doc_type": doc_type,
             "doc_id": doc_id})
    else:
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        upsert = mysql_insert(SearchDocument).values(**values)
        await session.execute(upsert.on_duplicate_key_update(
            tokens=upsert.inserted.tokens, updated_at=upsert.inserted.updated_at))


async def reindex(session: AsyncSession, doc_type: str, doc_id: int) -> bool:
    """Bring one document in line with its row, in the caller's transaction; True when the
    row is searchable (indexed), False when its document was removed. The source row is
    locked, so two runs for the same row write in the order their rows were read."""
    tokens = await _document_type(doc_type).read(session, doc_id)
    await write_document(session, doc_type, doc_id, tokens)
    return bool(tokens)


async def index_document(resources: Resources, doc_type: str, doc_id: int) -> str:
    """The search.index task's work, in its own transaction: "indexed" or "removed"."""
    await ready()
    async with resources.db.session() as session, session.begin():
        indexed = await reindex(session, doc_type, int(doc_id))
    return "indexed" if indexed else "removed"


REINDEX_BATCH = 200


async def reindex_batch(resources: Resources, doc_type: str, after_id: int = 0) -> int | None:
    """Re-index the next REINDEX_BATCH rows of a type after `after_id` (rebuilding the index
    after an import or a change of segmentation). Returns the last id done, or None when
    there were no rows left; the next batch is enqueued in the same transaction, so a
    rebuild runs to the end as a chain of short tasks."""
    model = _document_type(doc_type).model
    await ready()
    async with resources.db.session() as session, session.begin():
        row_ids = list((await session.execute(
            select(model.id).where(model.id > after_id).order_by(model.id)
            .limit(REINDEX_BATCH))).scalars())
        for row_id in row_ids:
            await reindex(session, doc_type, row_id)
        if len(row_ids) == REINDEX_BATCH:
            outbox.enqueue_task(session, "search.reindex_batch", doc_type, row_ids[-1])
    return row_ids[-1] if row_ids else None


# -- matching ---------------------------------------------------------------------------------
def match(session: AsyncSession, doc_type: str, query: SearchQuery,
           filters: Sequence[str] = ()):
    """A select of (doc_id, score) over the documents holding every query word; a higher
    score is a better match on both backends."""
    if _is_sqlite(session):
        # bm25() is lower-is-better, so it is negated.
        return (select(literal_column("search_fts.doc_id").label("doc_id"),
                       (-literal_column("bm25(search_fts)")).label("score"))
                .select_from(text("search_fts"))
                .where(text("search_fts MATCH :fts_query").bindparams(
                    fts_query=query.fts5(filters)))
                .where(literal_column("search_fts.doc_type") == doc_type))
    score = mysql_match(cast(ColumnElement[str], SearchDocument.tokens),
                        against=query.boolean_mode(filters)).in_boolean_mode()
    return (select(SearchDocument.doc_id.label("doc_id"), score.label("score"))
            .where(SearchDocument.doc_type == doc_type, score))


# -- for the endpoints ---------------------------------------------------------------------


async def prepare_query(resources: Resources, viewer_id: int, raw: str,
                        page: int) -> SearchQuery:
    """Check and parse a search request's `q` (and page), and remember it among the viewer's
    recent searches when it is a first page. The first search of a process builds the
    segmenter off the event loop."""
    if page > resources.settings.search_max_page:
        raise ValidationFailed(errors=[field_error(
            "page", f"at most {resources.settings.search_max_page}")])
    await ready()
    parsed = parse_query(resources.settings, raw)
    if page == 1:
        await remember_search(resources.cache, viewer_id, parsed.text)
    return parsed


def result_page(items: list[dict[str, Any]], total: int, page: int,
                limit: int) -> dict[str, Any]:
    return page_result(items, total, PageQuery.model_construct(page=page, limit=limit))


async def list_recent(resources: Resources, user_id: int) -> dict[str, Any]:
    """GET /v1/search/recent."""
    return {"items": await recent_searches(resources.cache, user_id)}


async def clear_recent(resources: Resources, user_id: int) -> dict[str, Any]:
    """DELETE /v1/search/recent."""
    await clear_recent_searches(resources.cache, user_id)
    return {"items": []}


# -- recent searches --------------------------------------------------------------------------
def _recent_key(cache: Cache, user_id: int) -> str:
    return cache.key("search", "recent", user_id)


async def remember_search(cache: Cache, user_id: int, query_text: str) -> None:
    """Put a query at the head of the user's recent searches (once; at most N kept). A Redis
    outage loses the entry, never the search."""
    settings = cache.settings
    key = _recent_key(cache, user_id)
    try:
        async with cache.redis.pipeline(transaction=True) as pipe:
            pipe.lrem(key, 0, query_text)
            pipe.lpush(key, query_text)
            pipe.ltrim(key, 0, settings.search_recent_limit - 1)
            pipe.expire(key, settings.search_recent_ttl_seconds)
            await pipe.execute()
    except UNAVAILABLE_ERRORS as error:
        log.warning("recent search not recorded: %r", error)


async def recent_searches(cache: Cache, user_id: int) -> list[str]:
    """The user's recent searches, newest first."""
    raw = await cache.redis.lrange(_recent_key(cache, user_id), 0,
                                   cache.settings.search_recent_limit - 1)
    return [item.decode() if isinstance(item, bytes) else item for item in raw]


async def clear_recent_searches(cache: Cache, user_id: int) -> None:
    await cache.redis.delete(_recent_key(cache, user_id))
