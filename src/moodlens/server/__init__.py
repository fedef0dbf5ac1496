"""`moodlens serve`: a FastAPI app, a SQL job store and a pool of analysis worker processes."""

from moodlens.server.app import create_app
from moodlens.server.services import ServerSettings

__all__ = ["ServerSettings", "create_app"]
