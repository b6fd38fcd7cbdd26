"""The GUI half of ``nninteractive-demo``: napari with the sample scan and the widget, ready to click."""

from __future__ import annotations

#: What to do first, shown on the canvas of the GUI demo.
INSTRUCTION = "Press P, then click an object to segment it.\nT: positive/negative  B: box  Ctrl+Z: undo"
#: The demo window at most this big (fits a 1366 x 768 laptop screen with its task bar).
WINDOW_SIZE = (1366, 740)


def open_gui(viewer=None):
    """Open the GUI demo in ``viewer`` (a new napari window if ``None``) without running the event loop.

    Adds the generated sample scan, docks the nnInteractive widget (it scrolls, so it fits small
    screens), starts the weight-free engine, sizes the window to the screen, shows
    :data:`INSTRUCTION` on the canvas and fits the slice into the canvas once Qt has laid the
    window out. Returns the viewer and the widget.
    """
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from .samples import synthetic_scan
    from .widget import NNInteractiveWidget

    if viewer is None:
        viewer = napari.Viewer(title="nnInteractive demo")
    for data, kwargs, kind in synthetic_scan():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = NNInteractiveWidget(viewer)  # scrolls inside itself, so it fits small screens
    viewer.window.add_dock_widget(widget, name="nnInteractive", area="right")
    screen = QApplication.primaryScreen()
    avail = screen.availableGeometry() if screen is not None else None
    width = min(WINDOW_SIZE[0], avail.width()) if avail is not None else WINDOW_SIZE[0]
    height = min(WINDOW_SIZE[1], avail.height()) if avail is not None else WINDOW_SIZE[1]
    viewer.window.resize(width, height)
    overlay = text_overlay(viewer)
    overlay.text = INSTRUCTION
    overlay.position = "top_left"
    overlay.font_size = 11
    overlay.color = "yellow"
    overlay.visible = True
    widget.setup_panel.set_remote(False, remember=False)  # the demo runs here, whatever was remembered
    widget.initialize()  # no model folder: the weight-free engine
    # The canvas gets its final size only after Qt lays the docked window out: fit the slice then.
    QApplication.processEvents()
    viewer.reset_view()
    QTimer.singleShot(150, viewer.reset_view)
    return viewer, widget


def text_overlay(viewer):
    """The viewer's canvas text overlay (``viewer.canvas.overlays.text`` from napari 0.9 on)."""
    return viewer.canvas.overlays.text if hasattr(viewer, "canvas") else viewer.text_overlay


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9 on)."""
    return viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera


def run_gui() -> int:
    """Open the GUI demo (:func:`open_gui`) and run napari until its window is closed."""
    import napari

    open_gui()
    napari.run()
    return 0
