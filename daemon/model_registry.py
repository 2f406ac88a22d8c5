"""The model registry: which classifier versions exist, and which one is active.

A version is a folder ``<model_dir>/<version>/`` (``model.skops``, ``card.json``,
confusion matrices) and a :class:`models.ModelVersion` row holding its path, the
SHA-256 of its model file and its card. Exactly one version is active; the
daemon's model holder notices a change and loads it without a restart.

Activation history is the ``activated_at`` column: ``rollback`` re-activates the
version activated most recently before the current one and withdraws the current
one (its ``activated_at`` is cleared), so repeated rollbacks walk back in time.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

import classifier
from daemon.errors import PermanentError
from models import ModelVersion

if TYPE_CHECKING:
    from classifier import SavedModel, TrainedModel
    from daemon.settings import Settings

__all__ = [
    "ModelRegistry",
    "RegistryError",
    "check_writable",
    "ensure_active_model",
    "model_dir",
]

logger = logging.getLogger(__name__)

_STAGING_PREFIX = ".staging-"


class RegistryError(PermanentError):
    """A registry operation that cannot be done (unknown version, nothing to roll back to)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def check_writable(directory: Path) -> None:
    """Create ``directory`` if needed and prove a file can be written there.

    Raises :class:`RegistryError` naming the folder, before any training starts.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RegistryError(f"cannot write models to {directory}: {reason}") from None


def model_dir(settings: Settings) -> Path:
    """The folder holding the model versions, resolved against the config's folder."""
    return settings.resolve_path(settings.classifier.model_dir)


class ModelRegistry:
    """Model versions in one session; the caller commits."""

    def __init__(
        self,
        session: Session,
        directory: Path,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._session = session
        self._directory = directory
        self._clock = clock

    def store(self, trained: TrainedModel) -> ModelVersion:
        """Save ``trained`` into ``<model_dir>/<version>/`` and register it (not activated)."""
        check_writable(self._directory)
        staging = self._directory / f"{_STAGING_PREFIX}{uuid.uuid4().hex}"
        try:
            saved = classifier.save_model(trained, staging)
            final = self._directory / str(saved.card["version"])
            if final.exists():
                raise RegistryError(f"model folder {final} exists already")
            staging.rename(final)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return self.register(_moved(saved, final))

    def register(self, saved: SavedModel) -> ModelVersion:
        """Record a saved model (its folder is the skops file's folder); returns the row."""
        version = str(saved.card["version"])
        if self._session.get(ModelVersion, version) is not None:
            raise RegistryError(f"model version {version} is registered already")
        row = ModelVersion(
            version=version,
            path=str(saved.path.parent.resolve()),
            sha256=saved.sha256,
            card=saved.card,
            created_at=self._clock(),
            activated_at=None,
            is_active=False,
        )
        self._session.add(row)
        self._session.flush()
        logger.info("model version %s registered", version)
        return row

    def activate(self, version: str) -> ModelVersion:
        """Make ``version`` the active model (the previous one stays, inactive)."""
        row = self._session.get(ModelVersion, version)
        if row is None:
            raise RegistryError(f"no model version {version!r} (see: complaintd model list)")
        _check_loadable(row)
        self._deactivate_all()
        row.is_active = True
        row.activated_at = self._clock()
        self._session.flush()
        logger.info("model version %s activated", version)
        return row

    def rollback(self) -> ModelVersion:
        """Re-activate the version that was active before the current one."""
        current = self.active()
        query = select(ModelVersion).where(
            ModelVersion.activated_at.is_not(None), ModelVersion.is_active.is_(False)
        )
        if current is not None and current.activated_at is not None:
            query = query.where(ModelVersion.activated_at <= current.activated_at)
        previous = self._session.scalars(
            query.order_by(ModelVersion.activated_at.desc(), ModelVersion.version.desc())
        ).first()
        if previous is None:
            raise RegistryError("no previously active model version to roll back to")
        _check_loadable(previous)
        self._deactivate_all()
        if current is not None:
            current.activated_at = None  # withdrawn: the next rollback goes further back
        previous.is_active = True
        previous.activated_at = self._clock()
        self._session.flush()
        logger.info(
            "model rolled back from %s to %s",
            current.version if current else None,
            previous.version,
        )
        return previous

    def active(self) -> ModelVersion | None:
        """The active version, or None."""
        return self._session.scalars(
            select(ModelVersion).where(ModelVersion.is_active.is_(True))
        ).first()

    def get(self, version: str) -> ModelVersion | None:
        """One version by name, or None."""
        return self._session.get(ModelVersion, version)

    def list(self) -> list[ModelVersion]:
        """Every registered version, newest first."""
        return list(
            self._session.scalars(
                select(ModelVersion).order_by(
                    ModelVersion.created_at.desc(), ModelVersion.version.desc()
                )
            )
        )

    def _deactivate_all(self) -> None:
        self._session.execute(
            update(ModelVersion).where(ModelVersion.is_active.is_(True)).values(is_active=False)
        )


def ensure_active_model(
    sessions: sessionmaker[Session], settings: Settings, progress: bool = True
) -> ModelVersion:
    """The active version; when there is none, train the default model and activate it.

    The default model is trained from ``training_data/`` with seed 0 (seconds).
    """
    directory = model_dir(settings)
    with sessions() as session:
        active = ModelRegistry(session, directory).active()
        if active is not None:
            return active
    logger.info("no active classifier model: training the default model from training_data/")
    check_writable(directory)
    try:
        examples = classifier.load_examples(classifier.default_training_files())
        trained = classifier.train_model(examples, seed=0, progress=progress)
    except classifier.ClassifierError as exc:
        raise RegistryError(f"cannot train the default classifier model: {exc}") from exc
    with sessions() as session:
        registry = ModelRegistry(session, directory)
        # Another instance may have finished first; keep its model rather than racing it.
        active = registry.active()
        if active is not None:
            return active
        row = registry.store(trained)
        registry.activate(row.version)
        session.commit()
        return row


def _moved(saved: SavedModel, folder: Path) -> SavedModel:
    return classifier.SavedModel(folder / saved.path.name, saved.sha256, saved.card)


def _check_loadable(row: ModelVersion) -> None:
    """Refuse to activate a version whose files are gone or changed since registration.

    Activating it would leave every daemon that starts afterwards without a
    model (and, because an active version exists, without retraining either).
    """
    try:
        classifier.load_model(Path(row.path), expected_sha256=row.sha256)
    except classifier.ModelLoadError as exc:
        raise RegistryError(f"model version {row.version} cannot be activated: {exc}") from None
