"""Skills that machines require and that members are certified in."""

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class Skill(Base):
    """E.g. "industrial-sewing", "overlocker", "fdm-printer"."""

    __tablename__ = "skills"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
