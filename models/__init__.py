"""SQLAlchemy 2 table definitions. Importing this package registers every table on `Base`.

Each module holds one domain's tables; Alembic (migrations/) reads `Base.metadata`.
"""
from models import (  # noqa: F401  (register tables)
    activities,
    booking,
    booking_records,
    booking_reviews,
    checkins,
    community,
    coupons,
    feedback,
    groupbuy,
    home,
    mall,
    media,
    payments,
    platform,
    points,
    realtime,
    reviews,
    staff,
    stats,
    users,
    virtual_pets,
)
from models.base import Base

__all__ = ["Base"]
