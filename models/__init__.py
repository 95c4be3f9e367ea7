"""SQLAlchemy 2 table definitions. Importing this package registers every table on `Base`.

Each module holds one domain's tables; Alembic (migrations/) reads `Base.metadata`.
"""
from models import community, mall, media, payments, platform, points, realtime, reviews, users  # noqa: F401  (register tables)
from models.base import Base

__all__ = ["Base"]
