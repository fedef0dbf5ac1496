"""`moodlens serve`: a FastAPI app, a SQL job store and a pool of analysis worker processes."""

from moodlens.server.app import ServerSettings, create_app

__all__ = ["ServerSettings", "create_app"]
