"""The "nnInteractive" dock widget: the panels, the status line, progress and Cancel.

The controls live in panels with one job each: :class:`~.setup_panel.SetupPanel` (image, Local or
Remote, model, engine, fold, device, download, server and API key), :class:`~.prompt_panel.PromptPanel` (tools, actions, initial mask,
output options), :class:`~.objects_panel.ObjectsPanel` (object list, export) and
:class:`~.session_panel.SessionPanel` (session files, autosave); their modules and this one are the
only ones with Qt widgets. This module composes them around one
:class:`~napari_nninteractive.gui.annotator.Annotator`: Initialize loads the engine (Local), or
Connect claims a session on a server (Remote), on a napari thread worker and attaches it, so the
viewer stays responsive throughout. Either way the annotator talks to one
:class:`~..core.api.SegmentationSession`; the session replaced is closed off the GUI thread (a remote
one releases its lease). The panels' controls are
also attributes of the widget (``w.run_button``, ``w.model_edit``, ...) for scripts and tests.
"""

from __future__ import annotations

import time
from functools import partial

from napari.layers import Image, Labels
from qtpy.QtCore import QEvent, QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from . import layers as L
from .annotator import Annotator
from .banner import Banner, FactsLine
from .objects_panel import ObjectsPanel
from .progress_line import ProgressLine
from .prompt_panel import PromptPanel
from .restyle import restyle
from .session_panel import SessionPanel
from .session_words import STARTED, describe_start
from .setup_panel import SetupPanel, gui_wording
from .worker import close_in_background, load_session_worker

#: The progress line after Cancel, until the engine stops (the network checks before each convolution).
CANCELLING = "cancelling … the step in progress finishes first; the mask stays as it was"


def _elapsed(started: float) -> str:
    """`` … 3 s`` after the first second of an action, else `` …``."""
    seconds = time.monotonic() - started
    return f" … {seconds:.0f} s" if seconds >= 1 else " …"


#: The status line before a session starts, for Local and for Remote.
INTRO = {
    False: "Not initialized. Leave Model empty to use the weight-free engine (no download), or get "
    "nnInteractive_v1.0 with Download (or Browse to a folder you have), then Initialize.",
    True: "Not connected. Fill in Server (and the API key, if the server needs one), then press Connect.",
}
#: The facts line before a session starts.
NOT_STARTED = "Not started: pick the image and press Initialize (engine, model and server: Settings tab)"


def _forward(panel: str, name: str) -> property:
    return property(lambda self: getattr(getattr(self, panel), name), doc=f"The {panel}'s ``{name}``.")


def _release(annotator: Annotator, slots, *_) -> None:
    """The widget is gone: its slots must not run any more; end the session (closed off the GUI thread)."""
    for signal in (annotator.state_changed, annotator.status, annotator.finished):
        signal.disconnect()  # only the widget and its panels listen to the annotator
    for emitter, slot in slots:
        emitter.disconnect(slot)
    annotator.detach()


class _VerticalScroll(QScrollArea):
    """Scrolls its widget up and down only: as wide as the widget needs, as short as the dock wants."""

    def minimumSizeHint(self) -> QSize:
        inner = self.widget()
        if inner is None:
            return super().minimumSizeHint()
        width = inner.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return QSize(width, super().minimumSizeHint().height())


class NNInteractiveWidget(QWidget):
    """Dock widget: pick an image and a model, Initialize, then prompt on any 2-D slice."""

    # What the panels do, reachable on the widget (the panels' child widgets are attributes too).
    list_models = _forward("setup_panel", "list_models")
    download_model = _forward("setup_panel", "download_model")
    lister = _forward("setup_panel", "lister")
    downloader = _forward("setup_panel", "downloader")
    apply_mask = _forward("prompt_panel", "apply_mask")
    output_changed = _forward("prompt_panel", "output_changed")
    save_session = _forward("session_panel", "save_session")
    load_session = _forward("session_panel", "load_session")
    restore_autosave = _forward("session_panel", "restore_autosave")
    restore = _forward("session_panel", "restore")
    autosaver = _forward("session_panel", "autosaver")
    image_ref = _forward("session_panel", "image_ref")
    file_worker = _forward("session_panel", "file_worker")

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.annotator = Annotator(napari_viewer)
        #: The worker loading the engine (Initialize) or connecting to the server (Connect), while it runs.
        self.loader = None
        self._closed = False
        self._progress_text = ""  # the last progress text shown (cleared when nothing runs any more)
        self._build()
        self.annotator.state_changed.connect(self.refresh)
        napari_viewer.layers.events.inserted.connect(self.refresh_layer_choices)
        # never change widgets inside napari's removal event (the viewer is still redrawing): right after it
        self._choices_later = QTimer(self)
        self._choices_later.setSingleShot(True)
        self._choices_later.setInterval(0)
        self._choices_later.timeout.connect(self.refresh_layer_choices)
        napari_viewer.layers.events.removed.connect(self._layer_removed)
        self.refresh_layer_choices()
        self._timer = QTimer(self)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self._poll_progress)
        self._timer.start()
        # napari deletes a docked widget when its window closes, without closeEvent: let go of the viewer then,
        # or a prediction finishing later would update deleted widgets (tracebacks on the way out)
        layer_events = napari_viewer.layers.events
        slots = ((layer_events.removed, self._layer_removed), (layer_events.inserted, self.refresh_layer_choices))
        self.destroyed.connect(partial(_release, self.annotator, slots))
        self.refresh()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        # What must stay in sight (what runs, offers, the status, progress) sits outside the tabs; the tabs
        # scroll, so the dock fits small screens (1366 x 768) and never makes napari's window taller than the screen.
        outer = QVBoxLayout(self)
        outer.setContentsMargins(2, 2, 2, 2)
        self.setup_panel = s = SetupPanel(self.viewer)
        s.initialize_requested.connect(lambda: self.initialize())
        self.facts_line = FactsLine(NOT_STARTED)
        self.banner = Banner()
        self.status_label = QLabel(INTRO[s.remote])
        self.status_label.setWordWrap(True)
        s.remote_radio.toggled.connect(self._mode_changed)
        s.image_combo.currentTextChanged.connect(self._image_chosen)
        s.fusion_check.toggled.connect(self._fusion_toggled)
        self._started_status = ""  # what the status line says while no message is due (set by Initialize)
        self.annotator.status.connect(self._annotator_status)
        self.prompt_panel = p = PromptPanel(self.annotator, self.viewer)
        self.session_panel = f = SessionPanel(self.annotator)
        self.objects_panel = ObjectsPanel(self.annotator, lambda: self.session_panel.image_ref, self.report)
        for panel in (s, f):
            panel.report.connect(self.report)
        f.changed.connect(self.refresh)
        self.tabs = QTabWidget()
        self.scroll_area = self._tab("Interact", s.start_row, p, self.objects_panel, f)
        self._tab("Settings", s)
        self.progress_bar = QProgressBar()  # shown when the step count is known; never animated (_poll_progress)
        self.progress_bar.setVisible(False)
        self.progress_label = ProgressLine()  # its updates repaint the line only, not the dock or the window
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        busy = QHBoxLayout()
        busy.addWidget(self.progress_label, 1)
        busy.addWidget(self.progress_bar, 1)
        busy.addWidget(self.cancel_button)
        for item in (self.facts_line, self.banner, self.tabs, self.status_label, busy):
            outer.addLayout(item) if isinstance(item, QHBoxLayout) else outer.addWidget(item)
        outer.setStretchFactor(self.tabs, 1)
        # The panels' controls, as attributes of the widget.
        self.image_combo, self.model_edit, self.engine_combo, self.fold_combo = (
            s.image_combo,
            s.model_edit,
            s.engine_combo,
            s.fold_combo,
        )
        self.hub_combo, self.list_button, self.download_button = s.hub_combo, s.list_button, s.download_button
        self.device_combo, self.autozoom_check, self.init_button = s.device_combo, s.autozoom_check, s.init_button
        self.fusion_check = s.fusion_check
        self.local_radio, self.remote_radio, self.server_edit, self.key_edit = (
            s.local_radio,
            s.remote_radio,
            s.server_edit,
            s.key_edit,
        )
        self.tool_buttons, self.polarity_button, self.autorun_check = p.tool_buttons, p.polarity_button, p.autorun_check
        self.run_button, self.undo_button, self.redo_button = p.run_button, p.undo_button, p.redo_button
        self.reset_button, self.next_button = p.reset_button, p.next_button
        self.mask_combo, self.mask_value, self.mask_refine = p.mask_combo, p.mask_value, p.mask_refine
        self.output_combo, self.mode_combo = p.output_combo, p.mode_combo
        self.class_spin, self.overlap_combo = p.class_spin, p.overlap_combo
        self.save_button, self.load_button, self.restore_button = f.save_button, f.load_button, f.restore_button
        self.autosave_check = f.autosave_check

    def _tab(self, name: str, *panels: QWidget) -> QScrollArea:
        """A tab that scrolls up and down, holding ``panels`` from the top."""
        scroll = _VerticalScroll()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        column = QVBoxLayout(body)
        for panel in panels:
            column.addWidget(panel)
        column.addStretch(1)
        scroll.setWidget(body)
        self.tabs.addTab(scroll, name)
        return scroll

    # ------------------------------------------------------------------ initialize

    def initialize(self, trust_checkpoint: bool = False) -> None:
        """Start the session Setup describes and hand the image over, on a worker thread.

        Local (Initialize): load the engine. Remote (Connect): claim a session on the server(s) and upload
        the image. The session attached before is closed first, off the GUI thread.
        ``trust_checkpoint`` allows the globals the checkpoint names (they can run code); the widget passes it only
        after the user confirmed :meth:`confirm_trust` for that file.
        """
        if self.loader is not None:
            return  # one at a time (the button is disabled meanwhile)
        layer = self.setup_panel.selected_image()
        if layer is None:
            return self.fail("No image layer: open an image (File > Open) and pick it above.")
        try:
            view = L.image_view(layer, L.data_step(layer, self.viewer.dims.point))
        except L.LayerError as exc:
            return self.fail(str(exc))
        choice = self.setup_panel.choice()
        old = self.annotator.runner
        self.annotator.detach()  # closes the old session in the background (a remote one releases its lease)
        closing = old.session_closed if old is not None else None

        def make_session():
            if closing is not None:  # a one-slot server needs the old lease back before the new claim
                closing.wait(10)
            return choice.make_session(trust_checkpoint)

        self.set_status(f"Connecting to {choice.label} …" if choice.remote else f"Loading {choice.label} …")
        self.setup_panel.set_loading(True)
        self.loader = load_session_worker(make_session, view.volume)
        self.loader.returned.connect(lambda result: self._loaded(view, choice, *result))
        self.loader.start()

    def start_with_engine(self, layer: Image, engine) -> Annotator:
        """Start annotating image ``layer`` with ``engine`` at once, on this thread.

        What Initialize does without the background load and without autosave: for scripts, tests
        and benchmarks that bring their own engine. Returns the annotator.
        """
        from ..core.session import Session

        view = L.image_view(layer, L.data_step(layer, self.viewer.dims.point))
        session = Session(engine)
        session.set_image(view.volume)
        self.annotator.attach(view, session)
        self.output_changed()
        return self.annotator

    def _loaded(self, view, choice, session, error) -> None:
        from ..core.errors import UnsafeCheckpointError, user_message

        self.setup_panel.set_loading(False)
        self.loader = None
        if self._closed:  # the dock was closed while loading: nobody will use this session
            close_in_background(session)
            return None
        if isinstance(error, UnsafeCheckpointError) and self.confirm_trust(error):
            return self.initialize(trust_checkpoint=True)
        if session is None:
            self.setup_panel.update_choices()  # the folder may have changed meanwhile (e.g. several folds now)
            failed = "Connection failed" if choice.remote else "Initialization failed"
            return self.fail(f"{failed}: {gui_wording(user_message(error))}")
        if view.layer not in self.viewer.layers:
            close_in_background(session)
            again = "Connect" if choice.remote else "Initialize"
            return self.fail(f"The image layer was removed while loading; pick an image and {again} again.")
        if choice.remote:
            self.setup_panel.remember_servers()
        self.annotator.attach(view, session)
        self.output_changed()
        self.session_started()  # offers a kept autosave in the banner
        words = describe_start(session, choice)
        self.facts_line.show_facts(*words.facts)
        self.banner.remove("cpu")
        if words.cpu_warning:
            self.banner.post("cpu", words.cpu_warning, "warning")
        self._started_status = "\n".join(words.status)
        self.set_status(self._started_status)
        self.refresh()

    def session_started(self):
        """Set up autosave for the attached image; its kept autosave (a document), if any, is offered in the
        banner and returned."""
        found = self.session_panel.session_started()
        self.offer_autosave(found)
        return found

    def offer_autosave(self, found) -> None:
        """Offer the image's kept autosave (document ``found``, or ``None``) in the banner until it is restored."""
        self.banner.remove("autosave")
        recoveries = self.session_panel.recoveries
        if found is None or not recoveries:
            return
        more = f" ({len(recoveries)} kept: pick one in Session)" if len(recoveries) > 1 else ""
        self.banner.post(
            "autosave",
            f"This image has an autosave: {recoveries[0].label()}{more}. New work does not replace it.",
            "offer",
            ("Restore", lambda: self.restore_autosave()),
        )

    def confirm_trust(self, error) -> bool:
        """Ask whether to load a checkpoint that can run code (default answer: No)."""
        text = (
            f"The checkpoint\n{error.path}\nrefers to {', '.join(error.names[:5])}, which a model "
            "checkpoint does not need.\n\nLoading it anyway can RUN ANY CODE its author put in the file, "
            "with your permissions. Only continue if you trust where this file came from.\n\nLoad it anyway?"
        )
        answer = QMessageBox.warning(
            self,
            "Checkpoint can run code",
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------ status

    def fail(self, message: str) -> None:
        """Show ``message`` as an error in the status line and as a notification."""
        self.set_status(message, error=True)
        self.annotator.notify(message, "warning")

    def report(self, text: str, error: bool) -> None:
        self.fail(text) if error else self.set_status(text)

    def _annotator_status(self, text: str, error: bool) -> None:
        """The annotator's message; an empty one (a prediction ran without any) ends what an earlier message said."""
        self.set_status(gui_wording(text) if text else self._started_status, error)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        restyle(self.status_label, "color: #ff6060;" if error else "")

    # ------------------------------------------------------------------ state

    def refresh_layer_choices(self, *_) -> None:
        """Offer the viewer's image layers and labels layers (not our prompt layers) in the panels."""
        ours = set(self.annotator.prompt_layers.values())
        images = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        labels = [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Labels)
            and layer not in ours
            and not layer.name.startswith(L.PROMPT_LAYER_PREFIX + "scribbles")
        ]
        self.setup_panel.set_images(images)
        self.prompt_panel.set_label_choices(labels)

    def refresh(self) -> None:
        """Show the annotator's state in every panel."""
        a = self.annotator
        for panel in (self.prompt_panel, self.session_panel, self.objects_panel):
            panel.refresh()
        # what runs, at once: its text and Cancel repaint with the panels (one repaint of the window, while the
        # engine prepares its input), not on a later tick of the poll, while the engine computes on both cores
        self._poll_progress()
        state = a.last_outcome.state if a.last_outcome is not None else None
        running = a.runner is not None and a.runner.busy  # Run was pressed: the line says what runs instead
        if state is not None and state.pending and not a.autorun and not running:
            self.progress_label.setText(f"{state.pending} prompt(s) queued: press Run.")
        if not a.ready and self.status_label.text().startswith(STARTED):
            self.set_status("Not initialized (the image layer was removed).", error=True)
        if not a.ready and self.loader is None:
            self.facts_line.setText(NOT_STARTED)
            self.banner.remove("cpu")
        if not (a.ready and self.session_panel.recoveries):  # restored (or nothing attached): no more offer
            self.banner.remove("autosave")

    def cancel(self) -> None:
        """Cancel the running download and prediction."""
        self.setup_panel.cancel_download()
        self.annotator.cancel()
        self._poll_progress()  # "cancelling" at once

    def _poll_progress(self) -> None:
        """Show what runs (every 150 ms). The bar is never animated: a busy animation repaints the dock
        all the time and made predictions through the widget several times slower than the engine."""
        runner = self.annotator.runner
        downloading = self.setup_panel.downloader is not None
        predicting = bool(runner is not None and runner.busy)
        busy = predicting or self.loader is not None or downloading
        fraction = None
        if downloading:
            done, total = self.setup_panel.download_progress or (0, None)
            text = f"downloading {done / 1e6:.0f}" + (f" of {total / 1e6:.0f}" if total else "") + " MB"
            fraction = (done, total) if total else None
        elif predicting and runner.cancelling:
            text = CANCELLING
        elif predicting:
            # the engine's steps from the second second on: a prediction shorter than that repaints nothing
            # while it computes (each repaint takes GUI time from the cores the prediction runs on)
            event = runner.last_progress if time.monotonic() - runner.action_started >= 1 else None
            text = event.message if event is not None else "predicting"
            fraction = (event.step, event.total) if event is not None and event.total else None
            text += _elapsed(runner.action_started)
        elif busy:
            text = "connecting to the server …" if self.setup_panel.remote else "loading the model …"
        if busy:
            self.progress_label.setText(text)
            self._progress_text = text
        elif self.progress_label.text() == self._progress_text:  # what ran is over: its text goes (not "queued")
            self.progress_label.setText("")
        self.progress_bar.setVisible(fraction is not None)
        if fraction is not None:
            self.progress_bar.setRange(0, max(int(fraction[1]), 1))
            self.progress_bar.setValue(min(int(fraction[0]), int(fraction[1])))
        self.cancel_button.setEnabled((predicting and not runner.cancelling) or downloading)

    def _layer_removed(self, _event=None) -> None:
        if not self._closed:
            self._choices_later.start()

    def _image_chosen(self, name: str) -> None:
        """Another image in the Image list: the session stays with its image until Initialize (Connect) moves it."""
        view = self.annotator.view
        if view is None or not name or name == view.layer.name:
            return
        again = "Connect" if self.setup_panel.remote else "Initialize"
        self.set_status(
            f"'{name}' is chosen, but prompts still segment '{view.layer.name}': press {again} to segment "
            f"'{name}' (the objects of '{view.layer.name}' stay in their layer)."
        )

    def _fusion_toggled(self, on: bool) -> None:
        """Multi-round fusion on or off for the attached local session, from its next prediction on."""
        session = self.annotator.runner.session if self.annotator.runner is not None else None
        if session is not None and hasattr(session, "fusion"):
            session.fusion = on  # read once per prediction, on the worker

    def _mode_changed(self, remote: bool) -> None:
        """Local <-> Remote: while nothing is attached or loading, the status line says what to do in that mode."""
        if not self.annotator.ready and self.loader is None:
            self.set_status(INTRO[remote])

    def closeEvent(self, event) -> None:
        """Closing the widget ends the session (a remote one releases its lease, in the background)."""
        self.shut_down()
        super().closeEvent(event)

    def event(self, event) -> bool:
        """napari's dock close button takes the widget out of its dock without closing it: end the session then."""
        if event.type() == QEvent.Type.ParentChange:
            docked = self.parent() is not None
            if getattr(self, "_docked", False) and not docked:
                self.shut_down()
            elif docked:
                self._closed = False
            self._docked = docked
        return super().event(event)

    def shut_down(self) -> None:
        """End the session (closed off the GUI thread) and remove the prompt layers; a load running now is
        closed when it finishes."""
        self._closed = True
        self.annotator.detach()


__all__ = ["NNInteractiveWidget"]
