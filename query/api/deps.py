"""FastAPI dependencies: the store and services held on ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..ingest.service import IngestService
from ..settings import Settings
from ..store.client import Store


def get_store(request: Request) -> Store:
    """The application's store."""
    return request.app.state.store


def get_settings(request: Request) -> Settings:
    """The application's settings."""
    return request.app.state.settings


def get_ingest(request: Request) -> IngestService:
    """The application's ingest service."""
    return request.app.state.ingest


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
IngestDep = Annotated[IngestService, Depends(get_ingest)]
