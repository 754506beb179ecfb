"""The record that a gateway's event (gateway, seq) has been applied."""

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, BigPK


class GatewayEvent(Base):
    """Gateways deliver events at least once; this table makes applying them exactly-once."""

    __tablename__ = "gateway_events"
    __table_args__ = (UniqueConstraint("gateway_id", "seq"),)

    id: Mapped[int] = mapped_column(BigPK, primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime]
