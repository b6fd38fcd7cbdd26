"""The "nnInteractive" dock widget (with :mod:`._objects_panel`, the only modules with Qt widgets).

It lays out the controls and forwards them to an
:class:`~napari_nninteractive.gui.annotator.Annotator`; model loading and predictions run on napari
thread workers, so the viewer stays responsive throughout.
"""

from __future__ import annotations

from pathlib import Path

from napari.layers import Image, Labels
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import layers as L
from .annotator import Annotator, OutputMode, Tool
from .objects_panel import ObjectsPanel
from .worker import load_session_worker
from ..core.engines.registry import DEVICE_CHOICES
from ..core.hub import DEFAULT_MODEL, cache_dir


def autosave_folder() -> Path:
    """Where autosaves live: ``autosave/`` in the model cache folder ($NNINTERACTIVE_HOME)."""
    return cache_dir() / "autosave"


NEW_LAYER = "<new layer>"


class NNInteractiveWidget(QWidget):
    """Dock widget: pick an image and a model, Initialize, then prompt on any 2-D slice."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.annotator = Annotator(napari_viewer)
        self.annotator.state_changed.connect(self._refresh)
        self.annotator.finished.connect(self._autosave)
        self._loader = None
        self._downloader = None
        self._lister = None
        self._file_worker = None
        self.autosaver = None
        self._image_ref = None
        self._autosave_doc = None
        self._download_cancel = None
        self._download_progress = None
        self._build()
        for ev in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            ev.connect(self._refresh_layer_choices)
        self._refresh_layer_choices()
        self._timer = QTimer(self)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self._poll_progress)
        self._timer.start()
        self._refresh()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        root = QVBoxLayout(self)

        setup = QGroupBox("Setup")
        form = QFormLayout(setup)
        self.image_combo = QComboBox()
        form.addRow("Image layer", self.image_combo)
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("empty: weight-free engine; or an nnInteractive model folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_model)
        row = QHBoxLayout()
        row.addWidget(self.model_edit)
        row.addWidget(browse)
        form.addRow("Model", row)
        self.hub_combo = QComboBox()
        self.hub_combo.addItem(DEFAULT_MODEL)
        self.hub_combo.setToolTip("Model folder of the Hugging Face repository to download (List fetches the names)")
        self.list_button = QPushButton("List")
        self.list_button.setToolTip("Fetch the repository's model names in the background (offline: the cached ones)")
        self.list_button.clicked.connect(self.list_models)
        self.download_button = QPushButton("Download")
        self.download_button.setToolTip("Fetch the chosen model (nnInteractive_v1.0: ~410 MB, CC BY-NC-SA 4.0) from "
                                        "Hugging Face into the cache, or use the cached copy; runs in the background.")
        self.download_button.clicked.connect(self.download_model)
        row = QHBoxLayout()
        row.addWidget(self.hub_combo, 1)
        row.addWidget(self.list_button)
        row.addWidget(self.download_button)
        form.addRow("Hugging Face", row)
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICE_CHOICES))
        self.autozoom_check = QCheckBox("AutoZoom")
        self.autozoom_check.setChecked(True)
        self.autozoom_check.setToolTip(
            "AutoZoom (network engine): when the object touches the border of the network's window, zoom out "
            "(up to 4x) and refine at full resolution.\nOff: no zooming out. A point gets one pass at zoom 1; a "
            "box, scribble, lasso or mask still starts at the zoom its size needs and is refined, so it is never cut.")
        row = QHBoxLayout()
        row.addWidget(self.device_combo)
        row.addWidget(self.autozoom_check)
        form.addRow("Device", row)
        self.init_button = QPushButton("Initialize")
        self.init_button.clicked.connect(self.initialize)
        form.addRow(self.init_button)
        self.status_label = QLabel(
            "Not initialized. Leave Model empty to use the weight-free engine (no download), or get "
            "nnInteractive_v1.0 with Download (or Browse to a folder you have), then Initialize.")
        self.status_label.setWordWrap(True)
        form.addRow(self.status_label)
        root.addWidget(setup)

        prompts = QGroupBox("Prompts (draw on any 2-D slice)")
        grid = QGridLayout(prompts)
        self.tool_buttons = {}
        for i, (tool, text) in enumerate([(Tool.POINT, "Point (P)"), (Tool.BBOX, "BBox (B)"),
                                          (Tool.SCRIBBLE, "Scribble (S)"), (Tool.LASSO, "Lasso (L)")]):
            b = QPushButton(text)
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, t=tool: self.annotator.toggle_tool(t))
            grid.addWidget(b, 0, i)
            self.tool_buttons[tool] = b
        self.polarity_button = QPushButton()
        self.polarity_button.clicked.connect(self.annotator.toggle_polarity)
        grid.addWidget(self.polarity_button, 1, 0, 1, 2)
        self.autorun_check = QCheckBox("Auto-run")
        self.autorun_check.setChecked(True)
        self.autorun_check.toggled.connect(lambda on: setattr(self.annotator, "autorun", on))
        grid.addWidget(self.autorun_check, 1, 2)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.annotator.run)
        grid.addWidget(self.run_button, 1, 3)
        self.undo_button = QPushButton("Undo (Ctrl+Z)")
        self.undo_button.clicked.connect(self.annotator.undo)
        self.redo_button = QPushButton("Redo (Ctrl+Shift+Z)")
        self.redo_button.clicked.connect(self.annotator.redo)
        self.reset_button = QPushButton("Reset object (R)")
        self.reset_button.clicked.connect(self.annotator.reset_object)
        self.next_button = QPushButton("Next object (M)")
        self.next_button.clicked.connect(self.annotator.next_object)
        for i, b in enumerate([self.undo_button, self.redo_button, self.reset_button, self.next_button]):
            grid.addWidget(b, 2 + i // 2, 2 * (i % 2), 1, 2)
        root.addWidget(prompts)

        seed = QGroupBox("Initialize with mask")
        row = QHBoxLayout(seed)
        self.mask_combo = QComboBox()
        self.mask_value = QSpinBox()
        self.mask_value.setRange(1, 2**31 - 1)
        self.mask_refine = QCheckBox("refine")
        apply_mask = QPushButton("Use mask")
        apply_mask.clicked.connect(self._apply_mask)
        for w in (self.mask_combo, QLabel("value"), self.mask_value, self.mask_refine, apply_mask):
            row.addWidget(w)
        root.addWidget(seed)

        out = QGroupBox("Output")
        form = QFormLayout(out)
        self.output_combo = QComboBox()
        self.output_combo.currentIndexChanged.connect(self._output_changed)
        form.addRow("Labels layer", self.output_combo)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems([m.value for m in OutputMode])
        self.mode_combo.currentIndexChanged.connect(self._output_changed)
        form.addRow("Mode", self.mode_combo)
        self.class_spin = QSpinBox()
        self.class_spin.setRange(1, 65535)
        self.class_spin.valueChanged.connect(self._output_changed)
        form.addRow("Class id (semantic)", self.class_spin)
        self.overlap_combo = QComboBox()
        self.overlap_combo.addItems(["keep existing objects", "overwrite"])
        self.overlap_combo.currentIndexChanged.connect(self._output_changed)
        form.addRow("On overlap", self.overlap_combo)
        root.addWidget(out)

        self.objects_panel = ObjectsPanel(self.annotator, lambda: self._image_ref, self._report)
        root.addWidget(self.objects_panel)

        files = QGroupBox("Session")
        grid = QGridLayout(files)
        self.save_button = QPushButton("Save session…")
        self.save_button.clicked.connect(lambda: self.save_session())
        self.load_button = QPushButton("Load session…")
        self.load_button.clicked.connect(lambda: self.load_session())
        self.restore_button = QPushButton("Restore autosave")
        self.restore_button.setToolTip("Bring back the objects autosaved for this image")
        self.restore_button.clicked.connect(self.restore_autosave)
        self.autosave_check = QCheckBox("Autosave after every interaction")
        self.autosave_check.setChecked(True)
        self.autosave_check.setToolTip(f"One file per image in {autosave_folder()}")
        grid.addWidget(self.save_button, 0, 0)
        grid.addWidget(self.load_button, 0, 1)
        grid.addWidget(self.restore_button, 0, 2)
        grid.addWidget(self.autosave_check, 1, 0, 1, 3)
        root.addWidget(files)

        busy = QHBoxLayout()
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setVisible(False)
        self.progress_label = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        busy.addWidget(self.progress_bar)
        busy.addWidget(self.cancel_button)
        root.addLayout(busy)
        root.addWidget(self.progress_label)
        root.addStretch(1)

    # ------------------------------------------------------------------ setup

    def _browse_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "nnInteractive model folder", self.model_edit.text())
        if folder:
            self.model_edit.setText(folder)

    def list_models(self) -> None:
        """Fill the Hugging Face choice with the repository's and the cached model names, on a worker."""
        from napari.qt.threading import create_worker

        from ..core import hub

        if self._lister is not None:
            return
        self.list_button.setEnabled(False)
        self._set_status("Listing the models on Hugging Face … (a few seconds offline)")
        self._lister = create_worker(hub.list_models, _start_thread=False)
        self._lister.returned.connect(self._listed)
        self._lister.errored.connect(lambda exc: self._listed(None, f"Could not list the models: {exc}"))
        self._lister.start()

    def _listed(self, listing, error: str | None = None) -> None:
        self._lister = None
        self.list_button.setEnabled(True)
        if listing is None:
            return self._fail(error)
        current = self.hub_combo.currentText()
        self.hub_combo.clear()
        for i, name in enumerate(listing.names):
            self.hub_combo.addItem(name)
            where = [w for w, names in (("in the repository", listing.remote), ("cached", listing.cached)) if name in names]
            self.hub_combo.setItemData(i, ", ".join(where) or "not listed", Qt.ItemDataRole.ToolTipRole)
        if current in listing.names:
            self.hub_combo.setCurrentText(current)
        self._set_status(listing.message + (" Pick one and press Download." if listing.repo else ""))

    def download_model(self) -> None:
        """Download (or find in the cache) the chosen model on a worker; Cancel stops it."""
        import threading

        from napari.qt.threading import create_worker

        from ..core import hub

        if self._downloader is not None:
            return
        name = self.hub_combo.currentText() or DEFAULT_MODEL
        self._download_cancel = threading.Event()
        self._download_progress = None

        def work():
            try:
                return hub.download_model(name, progress=lambda done, total: setattr(self, "_download_progress", (done, total)),
                                          should_cancel=self._download_cancel.is_set), None
            except hub.DownloadCancelled:
                return None, "Download cancelled; press Download again to resume."
            except hub.DownloadError as exc:
                return None, str(exc)

        self._set_status(f"Downloading {name} … (the weight-free engine works meanwhile)")
        self.download_button.setEnabled(False)
        self._downloader = create_worker(work, _start_thread=False)
        self._downloader.returned.connect(self._downloaded)
        self._downloader.start()

    def _downloaded(self, result) -> None:
        folder, error = result
        self._downloader = None
        self.download_button.setEnabled(True)
        if folder is None:
            return self._fail(error)
        self.model_edit.setText(str(folder))
        self._set_status(f"Model ready: {folder}. Press Initialize to use it (licence: CC BY-NC-SA 4.0).")

    def _selected(self, combo: QComboBox, kind):
        name = combo.currentText()
        return next((layer for layer in self.viewer.layers if isinstance(layer, kind) and layer.name == name), None)

    def initialize(self, trust_checkpoint: bool = False) -> None:
        """Load the model and hand the image over, on a worker thread.

        ``trust_checkpoint`` allows full unpickling of the checkpoint; the widget passes it only
        after the user confirmed :meth:`confirm_trust` for that file.
        """
        layer = self._selected(self.image_combo, Image)
        if layer is None:
            return self._fail("No image layer: open an image (File > Open) and pick it above.")
        folder = self.model_edit.text().strip() or None
        try:
            view = L.image_view(layer, tuple(self.viewer.dims.current_step))
        except L.LayerError as exc:
            return self._fail(str(exc))
        from ..core.engines.registry import make_engine

        device, autozoom = self.device_combo.currentText(), self.autozoom_check.isChecked()
        self.annotator.detach()
        self._set_status(f"Loading {Path(folder).name if folder else 'the weight-free engine'} …")
        self.init_button.setEnabled(False)
        self._loader = load_session_worker(
            lambda: make_engine(folder, "auto", device, autozoom, trust_checkpoint=trust_checkpoint), view.volume)
        self._loader.returned.connect(lambda result: self._loaded(view, *result))
        self._loader.start()

    def start_with_engine(self, layer: Image, engine) -> Annotator:
        """Start annotating image ``layer`` with ``engine`` at once, on this thread.

        What Initialize does without the background load and without autosave: for scripts, tests
        and benchmarks that bring their own engine. Returns the annotator.
        """
        from ..core.session import Session

        view = L.image_view(layer, tuple(self.viewer.dims.current_step))
        session = Session(engine)
        session.set_image(view.volume)
        self.annotator.attach(view, session)
        self._output_changed()
        return self.annotator

    def _loaded(self, view, session, error) -> None:
        from ..core.errors import UnsafeCheckpointError

        self.init_button.setEnabled(True)
        self._loader = None
        if isinstance(error, UnsafeCheckpointError) and self.confirm_trust(error):
            return self.initialize(trust_checkpoint=True)
        if session is None:
            return self._fail(f"Initialization failed: {error}")
        if view.layer not in self.viewer.layers:
            return self._fail("The image layer was removed while loading; pick an image and Initialize again.")
        self.annotator.attach(view, session)
        self._output_changed()
        found = self._session_started()
        engine = session.engine
        lines = [f"Initialized: {engine.describe()}."]
        licence = getattr(getattr(engine, "model", None), "licence", None)
        if licence:
            lines.append(f"Model licence: {licence}")
        if getattr(engine, "device", None) is not None and engine.device.type == "cpu":
            lines.append("Running on the CPU: the full nnInteractive model needs about a minute per forward pass "
                         "here; a GPU makes it interactive.")
        if found is not None:
            lines.append(f"An autosave of this image with {len(found.objects)} object(s) exists: press Restore "
                         f"autosave to continue it (new work would replace it at the next autosave).")
        self._set_status("\n".join(lines))
        self._refresh()

    # ------------------------------------------------------------------ session files

    def _session_started(self):
        """Set up autosave for the attached image; returns its earlier autosave, if any."""
        from .persist import Autosaver, find_autosave, image_ref

        self._image_ref = image_ref(self.annotator)  # fingerprints the voxels: once per image
        self.autosaver = Autosaver(self.annotator, self._image_ref, autosave_folder(), lambda msg: self._fail(msg))
        self._autosave_doc = find_autosave(self._image_ref, autosave_folder())
        self._refresh()
        return self._autosave_doc

    def _autosave(self, outcome) -> None:
        """After every finished action: save the annotation in the background (when switched on)."""
        if self.autosaver is not None and self.autosave_check.isChecked():
            self.autosaver.request()

    def _default_session_path(self) -> Path:
        from ..core.document import safe_name

        layer = self.annotator.view.layer
        source = getattr(getattr(layer, "source", None), "path", None)
        folder = Path(source).parent if source else Path.cwd()
        return folder / f"{safe_name(layer.name)}.nnisession.npz"

    def save_session(self, path: str | Path | None = None) -> None:
        """Save the objects, their prompt histories and the image reference (in the background)."""
        from .persist import object_sources, save_worker

        if not self.annotator.ready:
            return self.annotator.notify("Initialize first: there is nothing to save yet.", "warning")
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save session", str(self._default_session_path()),
                                                  "nnInteractive session (*.npz)")
            if not path:
                return
        self._file_worker = save_worker(object_sources(self.annotator, self._image_ref), path)
        self._file_worker.returned.connect(self._session_saved)
        self._file_worker.start()

    def _session_saved(self, result) -> None:
        self._file_worker = None
        path, error = result
        if error:
            return self._fail(error)
        self._set_status(f"Session saved to {path}.")

    def load_session(self, path: str | Path | None = None) -> None:
        """Load a session file for the annotated image and continue its objects."""
        from ..core.document import SessionFileError, load_document

        if not self.annotator.ready:
            return self.annotator.notify("Initialize on the session's image first, then load the session.", "warning")
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load session", str(self._default_session_path().parent),
                                                  "nnInteractive session (*.npz)")
            if not path:
                return
        try:
            doc = load_document(path)
        except SessionFileError as exc:
            return self._fail(str(exc))
        self._restore(doc, f"Session loaded from {path}")

    def restore_autosave(self) -> None:
        if self._autosave_doc is None:
            return self.annotator.notify("There is no autosave for this image.", "warning")
        self._restore(self._autosave_doc, "Autosave restored")

    def _restore(self, doc, done: str) -> None:
        from .persist import restore_into

        if self.annotator.runner.busy:
            return self.annotator.notify("Wait for the running prediction to finish (or Cancel it), then load.", "warning")
        problem = restore_into(self.annotator, doc)
        if problem:
            return self._fail(problem)
        self._autosave_doc = None
        self._set_status(f"{done}: {len(doc.objects)} object(s); keep refining the current one or press Next object.")
        self._refresh()

    def confirm_trust(self, error) -> bool:
        """Ask whether to load a checkpoint that can run code (default answer: No)."""
        text = (f"The checkpoint\n{error.path}\nrefers to {', '.join(error.names[:5])}, which a model "
                "checkpoint does not need.\n\nLoading it anyway can RUN ANY CODE its author put in the file, "
                "with your permissions. Only continue if you trust where this file came from.\n\nLoad it anyway?")
        answer = QMessageBox.warning(self, "Checkpoint can run code", text,
                                     QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                     QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _fail(self, message: str) -> None:
        self._set_status(message, error=True)
        self.annotator.notify(message, "warning")

    def _report(self, text: str, error: bool) -> None:
        self._fail(text) if error else self._set_status(text)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #ff6060;" if error else "")

    # ------------------------------------------------------------------ other controls

    def _apply_mask(self) -> None:
        layer = self._selected(self.mask_combo, Labels)
        if layer is None:
            return self.annotator.notify("Pick a labels layer to start from.", "warning")
        self.annotator.init_with_mask(layer, self.mask_value.value(), self.mask_refine.isChecked())

    def _output_changed(self, *_) -> None:
        a = self.annotator
        a.mode = list(OutputMode)[self.mode_combo.currentIndex()]
        a.class_id = self.class_spin.value()
        a.overwrite = self.overlap_combo.currentIndex() == 1
        a.output_choice = self._selected(self.output_combo, Labels)
        self.class_spin.setEnabled(a.mode is OutputMode.SEMANTIC)
        self.output_combo.setEnabled(a.mode is not OutputMode.SEPARATE)

    def _refresh_layer_choices(self, *_) -> None:
        ours = {layer for layer in self.annotator.prompt_layers.values()}
        images = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        labels = [layer.name for layer in self.viewer.layers if isinstance(layer, Labels) and layer not in ours
                  and not layer.name.startswith(L.PROMPT_LAYER_PREFIX + "scribbles")]
        for combo, names in ((self.image_combo, images), (self.mask_combo, labels), (self.output_combo, [NEW_LAYER] + labels)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        self._output_changed()

    # ------------------------------------------------------------------ state

    def _refresh(self) -> None:
        a = self.annotator
        ready = a.ready
        for tool, button in self.tool_buttons.items():
            button.setEnabled(ready)
            button.setChecked(a.tool is tool)
        self.polarity_button.setText("Positive (T)" if a.positive else "Negative (T)")
        color = L.POSITIVE_COLOR if a.positive else L.NEGATIVE_COLOR
        self.polarity_button.setStyleSheet(f"background-color: {color}; color: black; font-weight: bold;")
        state = a.last_outcome.state if a.last_outcome is not None else None
        for b in (self.run_button, self.reset_button, self.next_button, self.save_button, self.load_button):
            b.setEnabled(ready)
        self.restore_button.setEnabled(ready and self._autosave_doc is not None)
        self.undo_button.setEnabled(ready and (state is None or state.can_undo or a.runner.busy))
        self.redo_button.setEnabled(ready and (state is not None and (state.can_redo or a.runner.busy)))
        if state is not None and state.pending and not a.autorun:
            self.progress_label.setText(f"{state.pending} prompt(s) queued: press Run.")
        self.objects_panel.refresh()
        if not ready and self.status_label.text().startswith("Initialized"):
            self._set_status("Not initialized (the image layer was removed).", error=True)

    def _cancel(self) -> None:
        if self._downloader is not None and self._download_cancel is not None:
            self._download_cancel.set()
        self.annotator.cancel()

    def _poll_progress(self) -> None:
        runner = self.annotator.runner
        downloading = self._downloader is not None
        busy = bool(runner is not None and runner.busy) or self._loader is not None or downloading
        self.progress_bar.setVisible(busy)
        self.cancel_button.setEnabled((runner is not None and runner.busy) or downloading)
        if downloading:
            done, total = self._download_progress or (0, None)
            self.progress_label.setText(f"downloading {done / 1e6:.0f}" + (f" of {total / 1e6:.0f}" if total else "") + " MB")
        elif runner is not None and runner.busy:
            event = runner.last_progress
            self.progress_label.setText(event.message if event is not None else "predicting …")
        elif busy:
            self.progress_label.setText("loading the model …")
        elif self.progress_label.text().startswith(("predicting", "forward", "refining", "loading", "downloading")):
            self.progress_label.setText("")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.annotator.detach()
        super().closeEvent(event)


__all__ = ["NNInteractiveWidget"]
