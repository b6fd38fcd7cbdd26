"""Time to open the nnInteractive dock widget with no network (goal: under a second).

Blocks every socket connection (as offline), opens a viewer, then times docking the widget
through the plugin manifest, as a user does. Run under a display or ``xvfb-run -a``:

    xvfb-run -a python benchmarks/dock_open.py
"""

from __future__ import annotations

import socket
import time


def main() -> int:
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the benchmark")

    socket.socket.connect = refuse  # offline: any attempt fails at once
    socket.create_connection = refuse
    import napari
    from qtpy.QtCore import QCoreApplication

    viewer = napari.Viewer(show=True)
    QCoreApplication.processEvents()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        dock, _widget = viewer.window.add_plugin_dock_widget("napari-nninteractive", "nnInteractive")
        QCoreApplication.processEvents()
        times.append(time.perf_counter() - t0)
        viewer.window.remove_dock_widget(dock)
    print(f"dock open offline: first {times[0]:.2f} s (imports included), then {min(times[1:]):.2f} s; goal < 1 s")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
