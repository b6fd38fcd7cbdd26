"""The "Session" group of the dock widget: save, load and restore sessions, and autosave (Qt widgets).

Once an image is attached, :meth:`SessionPanel.session_started` fingerprints it, sets up its
:class:`~.persist.Autosaver` and finds its earlier autosave. Files are written and read on
workers; messages go out through ``report(text, error)`` and ``changed`` says the dock should
show the annotator's state again.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QFileDialog, QGridLayout, QGroupBox, QPushButton

from ..core.hub import cache_dir
from .annotator import Annotator


def autosave_folder() -> Path:
    """Where autosaves live: ``autosave/`` in the model cache folder ($NNINTERACTIVE_HOME)."""
    return cache_dir() / "autosave"


class SessionPanel(QGroupBox):
    """Session files and autosave for one :class:`Annotator`."""

    #: ``(text, error)`` for the dock's status line.
    report = Signal(str, bool)
    #: Objects were restored or the image changed: the dock shows the annotator's state again.
    changed = Signal()

    def __init__(self, annotator: Annotator):
        super().__init__("Session")
        self.annotator = annotator
        #: The attached image's reference (fingerprint), once a session started.
        self.image_ref = None
        #: Saves the annotation after every finished action (one file per image), once a session started.
        self.autosaver = None
        #: The earlier autosave of the attached image, until restored.
        self.autosave_doc = None
        #: The worker saving a session file, while it runs.
        self.file_worker = None
        grid = QGridLayout(self)
        self.save_button = QPushButton("Save session…")
        self.save_button.clicked.connect(lambda: self.save_session())
        self.load_button = QPushButton("Load session…")
        self.load_button.clicked.connect(lambda: self.load_session())
        self.restore_button = QPushButton("Restore autosave")
        self.restore_button.setToolTip("Bring back the objects autosaved for this image")
        self.restore_button.clicked.connect(lambda: self.restore_autosave())
        self.autosave_check = QCheckBox("Autosave after every interaction")
        self.autosave_check.setChecked(True)
        self.autosave_check.setToolTip(f"One file per image in {autosave_folder()}")
        grid.addWidget(self.save_button, 0, 0)
        grid.addWidget(self.load_button, 0, 1)
        grid.addWidget(self.restore_button, 0, 2)
        grid.addWidget(self.autosave_check, 1, 0, 1, 3)
        annotator.finished.connect(self.autosave)

    def session_started(self):
        """Set up autosave for the attached image; returns its earlier autosave, if any."""
        from .persist import Autosaver, find_autosave, image_ref

        self.image_ref = image_ref(self.annotator)  # fingerprints the voxels: once per image
        self.autosaver = Autosaver(
            self.annotator, self.image_ref, autosave_folder(), lambda msg: self.report.emit(msg, True)
        )
        self.autosave_doc = find_autosave(self.image_ref, autosave_folder())
        self.changed.emit()
        return self.autosave_doc

    def autosave(self, outcome=None) -> None:
        """After every finished action: save the annotation in the background (when switched on)."""
        if self.autosaver is not None and self.autosave_check.isChecked():
            self.autosaver.request()

    def default_session_path(self) -> Path:
        from ..core.document import SUFFIX, safe_name

        layer = self.annotator.view.layer
        source = getattr(getattr(layer, "source", None), "path", None)
        folder = Path(source).parent if source else Path.cwd()
        return folder / f"{safe_name(layer.name)}{SUFFIX}"

    def save_session(self, path: str | Path | None = None) -> None:
        """Save the objects, their prompt histories and the image reference (in the background)."""
        from .persist import object_sources, save_worker

        if not self.annotator.ready:
            return self.annotator.notify("Initialize first: there is nothing to save yet.", "warning")
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save session", str(self.default_session_path()), "nnInteractive session (*.npz)"
            )
            if not path:
                return
        self.file_worker = save_worker(object_sources(self.annotator, self.image_ref), path)
        self.file_worker.returned.connect(self._session_saved)
        self.file_worker.start()

    def _session_saved(self, result) -> None:
        self.file_worker = None
        path, error = result
        if error:
            return self.report.emit(error, True)
        self.report.emit(f"Session saved to {path}.", False)

    def load_session(self, path: str | Path | None = None) -> None:
        """Load a session file for the annotated image and continue its objects."""
        from ..core.document import SessionFileError, load_document

        if not self.annotator.ready:
            return self.annotator.notify("Initialize on the session's image first, then load the session.", "warning")
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Load session", str(self.default_session_path().parent), "nnInteractive session (*.npz)"
            )
            if not path:
                return
        try:
            doc = load_document(path)
        except SessionFileError as exc:
            return self.report.emit(str(exc), True)
        self.restore(doc, f"Session loaded from {path}")

    def restore_autosave(self) -> None:
        """Bring back the objects of the attached image's earlier autosave."""
        if self.autosave_doc is None:
            return self.annotator.notify("There is no autosave for this image.", "warning")
        self.restore(self.autosave_doc, "Autosave restored")

    def restore(self, doc, done: str) -> None:
        """Replace the annotation by session document ``doc``; ``done`` starts the status message."""
        from .persist import restore_into

        if self.annotator.runner.busy:
            return self.annotator.notify(
                "Wait for the running prediction to finish (or Cancel it), then load.", "warning"
            )
        problem = restore_into(self.annotator, doc)
        if problem:
            return self.report.emit(problem, True)
        self.autosave_doc = None
        self.report.emit(
            f"{done}: {len(doc.objects)} object(s); keep refining the current one or press Next object.", False
        )
        self.changed.emit()

    def refresh(self) -> None:
        ready = self.annotator.ready
        for b in (self.save_button, self.load_button):
            b.setEnabled(ready)
        self.restore_button.setEnabled(ready and self.autosave_doc is not None)


__all__ = ["SessionPanel", "autosave_folder"]
