"""The registry web app: a JSON API (OpenAPI at /docs) and server-rendered pages."""

from cryoneuro.web.app import create_app

__all__ = ["create_app"]
