"""account lifecycle: auth_time of sessions, purpose of codes, number-change audit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _users_autoincrement(enabled: bool) -> None:
    """SQLite: user ids never come back after a deletion (AUTOINCREMENT), as on
    PostgreSQL, so that a deleted user's audit trail never names a new user."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "users", recreate="always", table_kwargs={"sqlite_autoincrement": enabled}
    ):
        pass


def upgrade() -> None:
    _users_autoincrement(True)
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("auth_time", sa.DateTime(timezone=True), nullable=True))
    # A session opened before this revision was opened by the login that made it.
    op.execute("UPDATE auth_sessions SET auth_time = created_at")
    with op.batch_alter_table("verifications") as batch:
        batch.add_column(
            sa.Column("purpose", sa.String(length=16), nullable=False, server_default="login")
        )
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch.create_index("ix_verifications_user_id", ["user_id"])
    with op.batch_alter_table("auth_events") as batch:
        batch.add_column(sa.Column("new_phone_masked", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_events") as batch:
        batch.drop_column("new_phone_masked")
    # Codes for a number change would log in once their purpose is gone.
    op.execute("DELETE FROM verifications WHERE purpose <> 'login'")
    with op.batch_alter_table("verifications") as batch:
        batch.drop_index("ix_verifications_user_id")
        batch.drop_column("user_id")
        batch.drop_column("purpose")
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("auth_time")
    _users_autoincrement(False)
