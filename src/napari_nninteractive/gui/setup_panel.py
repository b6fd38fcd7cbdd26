"""The "Setup" group of the dock widget: image, model folder, engine, fold, device, download (Qt widgets).

The panel only gathers choices: :meth:`SetupPanel.choice` returns an :class:`EngineChoice` that
builds the engine, and the dock widget runs it on a worker when **Initialize** is pressed
(``initialize_requested``). Listing and downloading Hugging Face models run here, on workers;
messages go out through ``report(text, error)``. :func:`gui_wording` turns the command-line advice
in core messages (``--device cpu``, ``--fold``, ...) into the widget's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from napari.layers import Image
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
)

from ..core.engines.registry import AUTO, DEVICE_CHOICES, ENGINE_CHOICES, ENGINES, make_engine, resolve
from ..core.folds import list_folds
from ..core.hub import DEFAULT_MODEL

#: Command-line advice in core messages -> what to do in the widget.
GUI_WORDS = (
    ("choose one (fold=... / --fold)", "pick the fold in Setup (Fold)"),
    ("use --device cpu or auto", "pick cpu or auto in Device"),
    ("(--model DIR, or Model folder in the widget)", "(fill in Model in Setup, or pick another Engine)"),
    (
        "pass --trust-checkpoint (trust_checkpoint=True in Python, a confirmation in the widget)",
        "press Initialize again and answer Yes",
    ),
    ("(--cache-dir or $NNINTERACTIVE_HOME)", "($NNINTERACTIVE_HOME, set before starting napari)"),
    ("pick one of nninteractive-download-model --list", "press List and pick one"),
)


def gui_wording(message: str) -> str:
    """``message`` with the command-line advice of :data:`GUI_WORDS` said in the widget's words."""
    for cli, gui in GUI_WORDS:
        message = message.replace(cli, gui)
    return message


def layer_named(viewer, name: str, kind):
    """The layer of type ``kind`` called ``name`` in ``viewer``, or ``None`` (shared by the panels)."""
    return next((layer for layer in viewer.layers if isinstance(layer, kind) and layer.name == name), None)


def fill_combo(combo: QComboBox, names: list[str]) -> None:
    """Replace ``combo``'s items by ``names``, keeping the current one when it is still there (no signals)."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)


@dataclass(frozen=True)
class EngineChoice:
    """What Setup says to load: model folder (or ``None``), engine name, fold, device, AutoZoom."""

    folder: str | None
    engine: str
    fold: str | None
    device: str
    autozoom: bool

    @property
    def label(self) -> str:
        """What is being loaded, for the status line."""
        info = resolve(self.engine, self.folder)
        if not info.needs_model or self.folder is None:
            return f"the {info.name} engine"
        return Path(self.folder).name + (f" (fold {self.fold})" if self.fold is not None else "")

    def make(self, trust_checkpoint: bool = False):
        """Build the engine (on a worker: this loads the weights)."""
        return make_engine(
            self.folder, self.engine, self.device, self.autozoom, fold=self.fold, trust_checkpoint=trust_checkpoint
        )


class SetupPanel(QGroupBox):
    """Image layer, model folder (browse, Hugging Face list/download), engine, fold, device, AutoZoom, Initialize."""

    #: ``(text, error)`` for the dock's status line.
    report = Signal(str, bool)
    #: The Initialize button was pressed.
    initialize_requested = Signal()

    def __init__(self, viewer):
        super().__init__("Setup")
        self.viewer = viewer
        self.lister = None
        self.downloader = None
        #: ``(done, total)`` bytes of the running download, or ``None``.
        self.download_progress = None
        self._download_cancel = None
        #: The fold names of the model folder (listed for ``_folds_of``).
        self.folds: list[str] = []
        self._folds_of = None
        self._build()
        self.model_edit.textChanged.connect(self.update_choices)
        self.engine_combo.currentIndexChanged.connect(self.update_choices)
        self.update_choices()

    def _build(self) -> None:
        form = QFormLayout(self)
        self.image_combo = QComboBox()
        form.addRow("Image layer", self.image_combo)
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("empty: weight-free engine; or an nnInteractive model folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_model)
        form.addRow("Model", _row(self.model_edit, browse))
        self.hub_combo = QComboBox()
        self.hub_combo.addItem(DEFAULT_MODEL)
        self.hub_combo.setToolTip("Model folder of the Hugging Face repository to download (List fetches the names)")
        self.list_button = QPushButton("List")
        self.list_button.setToolTip("Fetch the repository's model names in the background (offline: the cached ones)")
        self.list_button.clicked.connect(self.list_models)
        self.download_button = QPushButton("Download")
        self.download_button.setToolTip(
            "Fetch the chosen model (nnInteractive_v1.0: ~410 MB, CC BY-NC-SA 4.0) from "
            "Hugging Face into the cache, or use the cached copy; runs in the background."
        )
        self.download_button.clicked.connect(self.download_model)
        form.addRow("Hugging Face", _row((self.hub_combo, 1), self.list_button, self.download_button))
        self.engine_combo = QComboBox()
        for i, name in enumerate(ENGINE_CHOICES):
            self.engine_combo.addItem(name)
            tip = "the network when Model is filled in, else weight-free" if name == AUTO else ENGINES[name].description
            self.engine_combo.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
        self.engine_combo.setToolTip("Which engine segments; hover over an entry for what it is")
        self.fold_label = QLabel("Fold")
        self.fold_combo = QComboBox()
        self.fold_combo.setToolTip("The model folder holds several trained folds (fold_*): which one to load")
        form.addRow("Engine", _row((self.engine_combo, 1), self.fold_label, self.fold_combo))
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICE_CHOICES))
        self.device_combo.setToolTip("Where the network runs; auto: a CUDA GPU, then Apple MPS, then the CPU")
        self.autozoom_check = QCheckBox("AutoZoom")
        self.autozoom_check.setChecked(True)
        self.autozoom_check.setToolTip(
            "AutoZoom (network engine): when the object touches the border of the network's window, zoom out "
            "(up to 4x) and refine at full resolution.\nOff: no zooming out. A point gets one pass at zoom 1; a "
            "box, scribble, lasso or mask still starts at the zoom its size needs and is refined, so it is never cut."
        )
        form.addRow("Device", _row(self.device_combo, self.autozoom_check))
        self.init_button = QPushButton("Initialize")
        self.init_button.clicked.connect(lambda: self.initialize_requested.emit())
        form.addRow(self.init_button)

    # ------------------------------------------------------------------ choices

    def model_folder(self) -> str | None:
        return self.model_edit.text().strip() or None

    def update_choices(self, *_) -> None:
        """Enable only the options the engine uses; fill the fold choice from the model folder.

        Listing the folds is a directory listing (:mod:`~..core.folds` imports no torch).
        """
        folder = self.model_folder()
        info = resolve(self.engine_combo.currentText(), folder)
        self.device_combo.setEnabled("device" in info.options)
        self.autozoom_check.setEnabled("autozoom" in info.options)
        self._folds_listed((folder, list_folds(folder) if folder is not None and info.needs_model else []))

    def _folds_listed(self, result: tuple[str | None, list[str]]) -> None:
        folder, folds = result
        if folder != self.model_folder():
            return  # the field changed meanwhile; its own listing follows
        if not resolve(self.engine_combo.currentText(), folder).needs_model:
            folds = []  # the engine changed meanwhile to one without a model
        self._folds_of = folder
        if folds != self.folds:
            self.folds = folds
            fill_combo(self.fold_combo, folds)
        several = len(folds) > 1
        for w in (self.fold_label, self.fold_combo):
            w.setVisible(several)
            w.setEnabled(several)

    def choice(self) -> EngineChoice:
        """The engine the controls describe now."""
        folder = self.model_folder()
        fold = self.fold_combo.currentText() if len(self.folds) > 1 and self._folds_of == folder else None
        return EngineChoice(
            folder,
            self.engine_combo.currentText(),
            fold,
            self.device_combo.currentText(),
            self.autozoom_check.isChecked(),
        )

    def selected_image(self) -> Image | None:
        return layer_named(self.viewer, self.image_combo.currentText(), Image)

    def set_images(self, names: list[str]) -> None:
        fill_combo(self.image_combo, names)

    def set_loading(self, loading: bool) -> None:
        self.init_button.setEnabled(not loading)

    def _browse_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "nnInteractive model folder", self.model_edit.text())
        if folder:
            self.model_edit.setText(folder)

    # ------------------------------------------------------------------ Hugging Face

    def list_models(self) -> None:
        """Fill the Hugging Face choice with the repository's and the cached model names, on a worker."""
        from napari.qt.threading import create_worker

        from ..core import hub

        if self.lister is not None:
            return
        self.list_button.setEnabled(False)
        self.report.emit("Listing the models on Hugging Face … (a few seconds offline)", False)
        self.lister = create_worker(hub.list_models, _start_thread=False)
        self.lister.returned.connect(self._listed)
        self.lister.errored.connect(lambda exc: self._listed(None, f"Could not list the models: {exc}"))
        self.lister.start()

    def _listed(self, listing, error: str | None = None) -> None:
        self.lister = None
        self.list_button.setEnabled(True)
        if listing is None:
            return self.report.emit(gui_wording(error), True)
        current = self.hub_combo.currentText()
        self.hub_combo.clear()
        for i, name in enumerate(listing.names):
            self.hub_combo.addItem(name)
            where = [
                w for w, names in (("in the repository", listing.remote), ("cached", listing.cached)) if name in names
            ]
            self.hub_combo.setItemData(i, ", ".join(where) or "not listed", Qt.ItemDataRole.ToolTipRole)
        if current in listing.names:
            self.hub_combo.setCurrentText(current)
        self.report.emit(listing.message + (" Pick one and press Download." if listing.repo else ""), False)

    def download_model(self) -> None:
        """Download (or find in the cache) the chosen model on a worker; :meth:`cancel_download` stops it."""
        import threading

        from napari.qt.threading import create_worker

        from ..core import hub

        if self.downloader is not None:
            return
        name = self.hub_combo.currentText() or DEFAULT_MODEL
        cancel = self._download_cancel = threading.Event()
        self.download_progress = None

        def work():
            try:
                return hub.download_model(
                    name,
                    progress=lambda done, total: setattr(self, "download_progress", (done, total)),
                    should_cancel=cancel.is_set,
                ), None
            except hub.DownloadCancelled:
                return None, "Download cancelled; press Download again to resume."
            except hub.DownloadError as exc:
                return None, str(exc)

        self.report.emit(f"Downloading {name} … (the weight-free engine works meanwhile)", False)
        self.download_button.setEnabled(False)
        self.downloader = create_worker(work, _start_thread=False)
        self.downloader.returned.connect(self._downloaded)
        self.downloader.start()

    def cancel_download(self) -> None:
        if self.downloader is not None and self._download_cancel is not None:
            self._download_cancel.set()

    def _downloaded(self, result) -> None:
        folder, error = result
        self.downloader = None
        self.download_button.setEnabled(True)
        if folder is None:
            return self.report.emit(gui_wording(error), True)
        self.model_edit.setText(str(folder))
        self.report.emit(f"Model ready: {folder}. Press Initialize to use it (licence: CC BY-NC-SA 4.0).", False)


def _row(*widgets) -> QHBoxLayout:
    """A row of widgets; ``(widget, stretch)`` pairs get a stretch factor."""
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(*(w if isinstance(w, tuple) else (w,)))
    return row


__all__ = ["GUI_WORDS", "EngineChoice", "SetupPanel", "fill_combo", "gui_wording", "layer_named"]
