"""Shared fixtures: models are loaded once per session and each test gets a copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpc_bio.metabolism.models import find_ich360, load_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def _ecoli_core_session():
    return load_model("e_coli_core")


@pytest.fixture()
def ecoli_core(_ecoli_core_session):
    """A fresh copy of COBRApy's bundled e_coli_core (textbook) model."""
    return _ecoli_core_session.copy()


@pytest.fixture(scope="session")
def _ijo1366_session():
    return load_model("iJO1366")


@pytest.fixture()
def ijo1366(_ijo1366_session):
    """A fresh copy of COBRApy's bundled iJO1366 model."""
    return _ijo1366_session.copy()


@pytest.fixture(scope="session")
def ich360_path() -> Path:
    """Path of the iCH360 JSON model shipped with the package."""
    return find_ich360()


@pytest.fixture(scope="session")
def _ich360_session(ich360_path):
    return load_model(ich360_path)


@pytest.fixture()
def ich360(_ich360_session):
    """A fresh copy of the shipped iCH360 model."""
    return _ich360_session.copy()
