"""The "Session" group of the dock widget: save, load and restore sessions, and autosave (Qt widgets).

Once an image is attached, :meth:`SessionPanel.session_started` fingerprints it, sets up its
:class:`~.persist.Autosaver` and finds its earlier autosave. Files are written and read on
workers; messages go out through ``report(text, error)`` and ``changed`` says the dock should
show the annotator's state again.

Crash recovery: when a session starts, the image's autosave is moved aside
(:func:`~.persist.keep_aside`, a few generations kept), so new work never replaces it. The offer
cannot be missed: a notification, and a highlighted **Restore autosave** button that names the
objects and the time; with several kept autosaves a list beside it picks one.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QFileDialog, QGridLayout, QGroupBox, QPushButton

from ..core.hub import cache_dir
from .annotator import Annotator
from .restyle import restyle


def autosave_folder() -> Path:
    """Where autosaves live: ``autosave/`` in the model cache folder ($NNINTERACTIVE_HOME)."""
    return cache_dir() / "autosave"


#: How the Restore autosave button looks while it offers an autosave.
OFFER_STYLE = "QPushButton { background-color: #e0a030; color: black; font-weight: bold; }"


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
        #: The newest kept autosave of the attached image (a document), until one is restored.
        self.autosave_doc = None
        #: The kept autosaves of the attached image (:class:`~.persist.Recovery`, newest first), until restored.
        self.recoveries: list = []
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
        self.recovery_combo = QComboBox()
        self.recovery_combo.setToolTip("The kept autosaves of this image: pick the one to restore")
        self.recovery_combo.currentIndexChanged.connect(lambda _: self.refresh())
        self.recovery_combo.setVisible(False)
        self.autosave_check = QCheckBox("Autosave after every interaction")
        self.autosave_check.setChecked(True)
        self.autosave_check.setToolTip(
            f"One file per image in {autosave_folder()}; the last session's autosave is kept aside "
            "(a few generations) until you restore it"
        )
        grid.addWidget(self.save_button, 0, 0)
        grid.addWidget(self.load_button, 0, 1)
        grid.addWidget(self.restore_button, 1, 0, 1, 2)
        grid.addWidget(self.recovery_combo, 1, 2)
        grid.addWidget(self.autosave_check, 2, 0, 1, 3)
        annotator.finished.connect(self.autosave)

    def session_started(self):
        """Set up autosave for the attached image; returns its newest kept autosave (a document), if any.

        The image's autosave is kept aside first, so this session's autosaves never replace it;
        a notification says it is there (this runs when Initialize finished, never in a layer event).
        """
        from .persist import Autosaver, image_ref, keep_aside

        self.image_ref = image_ref(self.annotator)  # fingerprints the voxels: once per image
        self.autosaver = Autosaver(
            self.annotator, self.image_ref, autosave_folder(), lambda msg: self.report.emit(msg, True)
        )
        self.recoveries = keep_aside(self.image_ref, autosave_folder())
        self.autosave_doc = self.recoveries[0].document if self.recoveries else None  # read once, by keep_aside
        self.recovery_combo.blockSignals(True)
        self.recovery_combo.clear()
        self.recovery_combo.addItems([r.label() for r in self.recoveries])
        self.recovery_combo.blockSignals(False)
        if self.recoveries:
            newest = self.recoveries[0]
            more = f" ({len(self.recoveries)} kept autosaves: pick one in the list)" if len(self.recoveries) > 1 else ""
            self.annotator.notify(
                f"This image has an autosave ({newest.label()}){more}: press 'Restore autosave' in the Session "
                "panel to continue it. It is kept aside, so new work does not replace it.",
                "info",
            )
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
        if self.annotator.runner.busy:  # its mask is being written into the layers the file is read from
            return self.annotator.notify(
                "Wait for the running prediction to finish (or Cancel it), then save.", "warning"
            )
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

    def restore_autosave(self, index: int | None = None) -> None:
        """Bring back the objects of a kept autosave of the attached image (``index`` in :attr:`recoveries`;
        default: the one picked in the list, else the newest)."""
        from ..core.document import SessionFileError, load_document

        if not self.recoveries:
            return self.annotator.notify("There is no autosave for this image.", "warning")
        index = max(0, self.recovery_combo.currentIndex()) if index is None else index
        if not 0 <= index < len(self.recoveries):
            return self.annotator.notify(
                f"There are {len(self.recoveries)} kept autosaves, no number {index}.", "warning"
            )
        chosen = self.recoveries[index]
        doc = self.autosave_doc if index == 0 else None
        if doc is None:
            try:
                doc = load_document(chosen.path)
            except SessionFileError as exc:
                return self.report.emit(str(exc), True)
        self.restore(doc, f"Autosave restored ({chosen.label()})")

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
        self.autosave_doc, self.recoveries = None, []  # the files stay kept aside (a few, see keep_aside)
        self.recovery_combo.clear()
        self.report.emit(
            f"{done}: {len(doc.objects)} object(s); keep refining the current one or press Next object.", False
        )
        self.changed.emit()

    def refresh(self) -> None:
        ready = self.annotator.ready
        for b in (self.save_button, self.load_button):
            b.setEnabled(ready)
        offer = ready and bool(self.recoveries)
        self.restore_button.setEnabled(offer)
        self.recovery_combo.setVisible(offer and len(self.recoveries) > 1)
        if offer:  # highlighted, with what it brings back: a crash's work must not be missed
            picked = self.recoveries[max(0, self.recovery_combo.currentIndex())]
            self.restore_button.setText(f"Restore autosave ({picked.label()})")
            restyle(self.restore_button, OFFER_STYLE)
        else:
            self.restore_button.setText("Restore autosave")
            restyle(self.restore_button, "")


__all__ = ["SessionPanel", "autosave_folder"]
