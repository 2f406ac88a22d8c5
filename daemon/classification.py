"""The active classifier, loaded at start and swapped when an admin activates another.

The database says which model version is active; every ``reload_interval``
seconds (never more often) the holder asks, and loads the new files when the
answer changed. A model that fails to load is logged and the previous one
kept, so a bad activation cannot stop intake.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from classifier import ClassifierError, ComplaintClassifier, Prediction, load_model
from models import ModelVersion

__all__ = ["ModelHolder"]

logger = logging.getLogger(__name__)


class ModelHolder:
    """Thread-safe access to the active :class:`ComplaintClassifier`, with hot swap."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        abstain_below: float,
        reload_interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._abstain_below = abstain_below
        self._reload_interval = reload_interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._model: ComplaintClassifier | None = None
        self._checked_at: float | None = None

    @property
    def version(self) -> str | None:
        """The version in use, or None while no model is loaded."""
        model = self._model
        return model.version if model is not None else None

    def refresh(self, *, force: bool = False) -> None:
        """Load the active version if it changed (at most once per ``reload_interval``)."""
        now = self._monotonic()
        with self._lock:
            if (
                not force
                and self._checked_at is not None
                and now - self._checked_at < self._reload_interval
            ):
                return
            self._checked_at = now
            with self._sessions() as session:
                active = session.scalars(
                    select(ModelVersion).where(ModelVersion.is_active.is_(True))
                ).first()
            if active is None or active.version == self.version:
                return
            try:
                model = load_model(
                    Path(active.path),
                    expected_sha256=active.sha256,
                    abstain_below=self._abstain_below,
                )
            except ClassifierError as exc:
                logger.error(
                    "cannot load model %s (%s); keeping %s", active.version, exc, self.version
                )
                return
            _warm_up(model)
            previous, self._model = self.version, model
            logger.info("classifier model %s loaded (was %s)", model.version, previous)

    def classify(self, items: Sequence[tuple[str, str]]) -> list[Prediction] | None:
        """Predictions for (subject, text) pairs, or None when no model is available."""
        self.refresh()
        model = self._model
        if model is None or not items:
            return None
        return model.predict_many(items)


def _warm_up(model: ComplaintClassifier) -> None:
    """Predict once now, so the first mail does not pay for lazily loaded parts.

    The language identifier loads its own model (about 0.8 s) on first use;
    without this the first mail of a burst waits for it, and every mail
    behind it too.
    """
    try:
        model.predict_many([("warm-up", "This is a warm-up text, not a complaint.")])
    except Exception:  # a model that cannot predict is reported by the first real batch
        logger.debug("classifier warm-up failed", exc_info=True)
