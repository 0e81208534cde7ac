"""Every table on one `MetaData`, for migrations and tests; the application does not
import it."""

from app.models import auth_event, delivery_attempt, login_session, user, verification
from app.models.base import Base

TABLE_MODULES = (auth_event, delivery_attempt, login_session, user, verification)
metadata = Base.metadata
