"""The "Engine" group of the Settings tab (Local or Remote, model folder, engine, fold, device, server) and
the image row of the Interact tab (image layer, Initialize or Connect).

The panel only gathers choices: :meth:`SetupPanel.choice` returns an :class:`EngineChoice` (Run on
*Local*: model folder, engine, fold, device) or a :class:`RemoteChoice` (Run on *Remote*: server
URL(s), API key); both build a session with ``make_session()``, which the dock widget runs on a
worker when **Initialize** / **Connect** is pressed (``initialize_requested``). Listing and
downloading Hugging Face models run here, on workers; messages go out through ``report(text,
error)``. :func:`gui_wording` turns the command-line advice in core messages (``--device cpu``,
``--fold``, ``--api-key``, ...) into the widget's words. The Local/Remote choice and the last
server URL(s) are remembered (:mod:`.settings`); the API key never is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    QRadioButton,
    QWidget,
)

from ..core.engines.registry import AUTO, DEVICE_CHOICES, ENGINE_CHOICES, ENGINES, make_engine, resolve
from ..core.folds import list_folds
from ..core.hub import DEFAULT_MODEL
from ..core.remote.protocol import DEFAULT_PORT
from ..core.remote.transport import API_KEY_ENV
from .settings import RUN_ON, SERVERS, read_setting, write_setting

#: Command-line advice in core messages -> what to do in the widget.
GUI_WORDS = (
    ("choose one (fold=... / --fold)", "pick the fold in Settings (Fold)"),
    ("use --device cpu or auto", "pick cpu or auto in Settings (Device)"),
    ("(--model DIR, or Model folder in the widget)", "(fill in Model in Settings, or pick another Engine)"),
    (
        "pass --trust-checkpoint (trust_checkpoint=True in Python, a confirmation in the widget)",
        "press Initialize again and answer Yes",
    ),
    ("(--cache-dir or $NNINTERACTIVE_HOME)", "($NNINTERACTIVE_HOME, set before starting napari)"),
    ("pick one of nninteractive-download-model --list", "press List and pick one"),
    # remote sessions (core/remote/transport.py)
    (
        f"enter it in the API key field, pass --api-key, or set {API_KEY_ENV}.",
        f"enter it in the API key field (or set {API_KEY_ENV} before starting napari).",
    ),
    (
        "Use the key the server was started with (its --api-key or",
        "Enter the key the server was started with in the API key field (its --api-key or",
    ),
    ("No server URL given; give one like", "No server given: fill in Server, e.g."),
    ("is not a server URL; give one like", "is not a server URL; fill in Server like"),
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
    """What Setup says to load: model folder (or ``None``), engine name, fold, device, AutoZoom, fusion, compile."""

    folder: str | None
    engine: str
    fold: str | None
    device: str
    autozoom: bool
    fusion: bool = False
    compile: bool = False

    #: Local: the engine runs in this process.
    remote = False

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
            self.folder,
            self.engine,
            self.device,
            self.autozoom,
            fold=self.fold,
            trust_checkpoint=trust_checkpoint,
            compile=self.compile,
        )

    def make_session(self, trust_checkpoint: bool = False):
        """A local :class:`~..core.session.Session` around the engine (on a worker)."""
        from ..core.session import Session

        return Session(self.make(trust_checkpoint), fusion=self.fusion)


@dataclass(frozen=True)
class RemoteChoice:
    """What Setup says to connect to: server URL(s) (comma-separated: a pool), API key, AutoZoom.

    The key is left out of ``repr`` (it never reaches a log line) and is never stored.
    """

    servers: str
    api_key: str | None = field(default=None, repr=False)
    autozoom: bool = True

    #: Remote: a session on an nnInteractive server.
    remote = True

    @property
    def label(self) -> str:
        """Where it connects, for the status line."""
        return self.servers or "the server"

    def make_session(self, trust_checkpoint: bool = False):
        """Claim a :class:`~..core.remote.client.RemoteSession` (on a worker: this talks to the server).

        ``trust_checkpoint`` is ignored: the server loads its model itself.
        """
        from ..core.remote.client import RemoteSession

        return RemoteSession(self.servers, api_key=self.api_key or None, autozoom=self.autozoom)


#: The "Run on" choices, as remembered in the settings.
LOCAL, REMOTE = "local", "remote"


class SetupPanel(QGroupBox):
    """Local or Remote, model folder (browse, Hugging Face list/download), engine, fold, device, or server and
    API key; AutoZoom (the Settings tab). Its :attr:`start_row` (image layer, Initialize or Connect) goes on the
    Interact tab."""

    #: ``(text, error)`` for the dock's status line.
    report = Signal(str, bool)
    #: The Initialize button was pressed.
    initialize_requested = Signal()

    def __init__(self, viewer):
        super().__init__("Engine")
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
        self.server_edit.setText(read_setting(SERVERS))
        self.set_remote(read_setting(RUN_ON, LOCAL) == REMOTE, remember=False)
        self.remote_radio.toggled.connect(lambda on: self.set_remote(on))

    def _build(self) -> None:
        self.form = form = QFormLayout(self)
        # the image and Initialize/Connect sit on the Interact tab (start_row); the rest on the Settings tab
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The image layer to segment")
        self.init_button = QPushButton("Initialize")
        self.init_button.clicked.connect(lambda: self.initialize_requested.emit())
        self.start_row = _row(QLabel("Image"), (self.image_combo, 1), self.init_button)
        self.local_radio = QRadioButton("Local")
        self.local_radio.setToolTip("Segment in napari's process, on this computer's GPU or CPU")
        self.remote_radio = QRadioButton("Remote")
        self.remote_radio.setToolTip("Segment on an nnInteractive server (nninteractive-serve), e.g. a GPU machine")
        self.local_radio.setChecked(True)
        form.addRow("Run on", _row(self.local_radio, self.remote_radio, 1))
        # Local
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("empty: weight-free engine; or an nnInteractive model folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_model)
        model_row = _row(self.model_edit, browse)
        form.addRow("Model", model_row)
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
        hub_row = _row((self.hub_combo, 1), self.list_button, self.download_button)
        form.addRow("Hugging Face", hub_row)
        self.engine_combo = QComboBox()
        for i, name in enumerate(ENGINE_CHOICES):
            self.engine_combo.addItem(name)
            tip = "the network when Model is filled in, else weight-free" if name == AUTO else ENGINES[name].description
            self.engine_combo.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
        self.engine_combo.setToolTip("Which engine segments; hover over an entry for what it is")
        self.fold_label = QLabel("Fold")
        self.fold_combo = QComboBox()
        self.fold_combo.setToolTip("The model folder holds several trained folds (fold_*): which one to load")
        engine_row = _row((self.engine_combo, 1), self.fold_label, self.fold_combo)
        form.addRow("Engine", engine_row)
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICE_CHOICES))
        self.device_combo.setToolTip("Where the network runs; auto: a CUDA GPU, then Apple MPS, then the CPU")
        self.compile_check = QCheckBox("Compile")
        self.compile_check.setToolTip(
            "Compile the network with torch.compile while it loads (a one-off wait of seconds to minutes at "
            "Initialize); faster passes, mostly on a CUDA GPU. Cancel then stops between passes."
        )
        device_row = _row((self.device_combo, 1), self.compile_check)
        form.addRow("Device", device_row)
        self._local_rows = (model_row, hub_row, engine_row, device_row)
        # Remote
        self.server_edit = QLineEdit()
        self.server_edit.setPlaceholderText(f"http://gpu-box:{DEFAULT_PORT}  (several, comma-separated: a pool)")
        self.server_edit.setToolTip(
            "URL of an nnInteractive server (nninteractive-serve); several URLs separated by commas are a pool: "
            "the first one with a free slot is used. Remembered for the next time."
        )
        form.addRow("Server", self.server_edit)
        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText(f"empty: ${API_KEY_ENV}")
        self.key_edit.setToolTip(
            f"The key the server was started with. Empty: the {API_KEY_ENV} environment variable (or none). "
            "Never saved."
        )
        form.addRow("API key", self.key_edit)
        self._remote_rows = (self.server_edit, self.key_edit)
        # Both
        self.autozoom_check = QCheckBox("AutoZoom")
        self.autozoom_check.setChecked(True)
        self.autozoom_check.setToolTip(
            "Let the network zoom out when the object outgrows its patch (as nnInteractive does); "
            "takes effect at the next Initialize / Connect"
        )
        form.addRow(self.autozoom_check)
        self.fusion_check = QCheckBox("Multi-round fusion")
        self.fusion_check.setToolTip(
            "After each correction, keep per slice the previous mask or the new one, whichever the prompts and the "
            "image support better, so a click cannot spoil slices far from it. Takes effect from the next "
            "prediction (Local only)."
        )
        form.addRow(self.fusion_check)

    # ------------------------------------------------------------------ choices

    @property
    def remote(self) -> bool:
        """Run on Remote (a server) rather than Local."""
        return self.remote_radio.isChecked()

    def set_remote(self, remote: bool, remember: bool = True) -> None:
        """Switch between Local and Remote: show that mode's controls; ``remember`` the choice for next time."""
        for radio, on in ((self.remote_radio, remote), (self.local_radio, not remote)):
            if radio.isChecked() != on:
                radio.blockSignals(True)
                radio.setChecked(on)
                radio.blockSignals(False)
        for rows, shown in ((self._local_rows, not remote), (self._remote_rows, remote)):
            for row in rows:
                row.setVisible(shown)
                row.setEnabled(shown)
                label = self.form.labelForField(row)
                if label is not None:
                    label.setVisible(shown)
        self.init_button.setText("Connect" if remote else "Initialize")
        self.init_button.setToolTip(
            "Claim a session on the server and upload the image (in the background)"
            if remote
            else "Load the engine and hand the image over (in the background)"
        )
        self.update_choices()
        if remember:
            write_setting(RUN_ON, REMOTE if remote else LOCAL)

    def remember_servers(self) -> None:
        """Remember the Server field (after a successful Connect); never the key."""
        write_setting(SERVERS, self.server_edit.text().strip())

    def model_folder(self) -> str | None:
        return self.model_edit.text().strip() or None

    def update_choices(self, *_) -> None:
        """Enable only the options the engine uses; fill the fold choice from the model folder.

        Listing the folds is a directory listing (:mod:`~..core.folds` imports no torch).
        """
        folder = self.model_folder()
        info = resolve(self.engine_combo.currentText(), folder)
        self.device_combo.setEnabled("device" in info.options)
        self.compile_check.setEnabled("compile" in info.options)
        remote = self.remote
        self.autozoom_check.setEnabled(remote or "autozoom" in info.options)
        self.fusion_check.setEnabled(not remote)
        self.autozoom_check.setToolTip(
            "AutoZoom for this session on the server: when the object touches the border of the network's "
            "window, zoom out and refine at full resolution."
            if remote
            else "AutoZoom (network engine): when the object touches the border of the network's window, zoom out "
            "(up to 4x) and refine at full resolution.\nOff: no zooming out. A point gets one pass at zoom 1; a "
            "box, scribble, lasso or mask still starts at the zoom its size needs and is refined, so it is never cut."
        )
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

    def choice(self) -> EngineChoice | RemoteChoice:
        """The engine (Local) or the server (Remote) the controls describe now."""
        if self.remote:
            return RemoteChoice(
                self.server_edit.text().strip(), self.key_edit.text().strip() or None, self.autozoom_check.isChecked()
            )
        folder = self.model_folder()
        fold = self.fold_combo.currentText() if len(self.folds) > 1 and self._folds_of == folder else None
        return EngineChoice(
            folder,
            self.engine_combo.currentText(),
            fold,
            self.device_combo.currentText(),
            self.autozoom_check.isChecked(),
            self.fusion_check.isChecked(),
            self.compile_check.isChecked() and self.compile_check.isEnabled(),
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


def _row(*widgets) -> QWidget:
    """A row of widgets (one widget, so the row can be hidden); ``(widget, stretch)`` pairs get a stretch
    factor, a bare number is a stretch."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        if isinstance(w, int):
            layout.addStretch(w)
        else:
            layout.addWidget(*(w if isinstance(w, tuple) else (w,)))
    return row


__all__ = [
    "GUI_WORDS",
    "LOCAL",
    "REMOTE",
    "EngineChoice",
    "RemoteChoice",
    "SetupPanel",
    "fill_combo",
    "gui_wording",
    "layer_named",
]
