"""delivery attempts reported by the providers, and the sync's watermark

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("attempt_sid", sa.String(length=64), nullable=False),
        sa.Column("verification_sid", sa.String(length=64), nullable=False),
        sa.Column("verification_id", sa.Integer(), nullable=True),
        sa.Column("market", sa.String(length=8), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("delivery_status", sa.String(length=24), nullable=True),
        sa.Column("delivery_error_code", sa.String(length=16), nullable=True),
        sa.Column("converted", sa.Boolean(), nullable=True),
        sa.Column("price_micros", sa.BigInteger(), nullable=True),
        sa.Column("price_currency", sa.String(length=3), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
        sa.UniqueConstraint("provider", "attempt_sid", name=op.f("uq_delivery_attempts_provider")),
    )
    op.create_index(
        "ix_delivery_attempts_verification_id", "delivery_attempts", ["verification_id"]
    )
    op.create_index(
        "ix_delivery_attempts_verification_sid", "delivery_attempts", ["verification_sid"]
    )
    op.create_index(
        "ix_delivery_attempts_market_attempted_at",
        "delivery_attempts",
        ["market", "attempted_at"],
    )
    op.create_table(
        "sync_watermarks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("watermark_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("sync_watermarks")
    op.drop_index("ix_delivery_attempts_market_attempted_at", table_name="delivery_attempts")
    op.drop_index("ix_delivery_attempts_verification_sid", table_name="delivery_attempts")
    op.drop_index("ix_delivery_attempts_verification_id", table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
