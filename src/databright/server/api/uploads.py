"""Routes filled in by the work on issue 11/13 (uploads)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["ALL"]

ALL: list[APIRouter] = []
