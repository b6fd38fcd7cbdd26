"""Prompt-to-mask latency and the largest Qt event-loop stall while the widget predicts.

Goals: latency through the widget within 10 % of the engine alone; largest stall <= 50 ms.

A 10 ms QTimer records the gaps between its ticks while predictions run. Two scenarios, each
with a real torch forward pass (a random-weight network in the official folder format, 128^3
patch, on the CPU):

* ``random``: the random network's own output. Every click yields a very different mask
  (hundreds of thousands of changed voxels): the worst case for writing into the layer.
* ``refine``: the same forward pass, but the output is a fixed object (thresholded image), as a
  trained model gives after the first click: later clicks change few voxels.

Each scenario runs the same clicks, and before each of them the same click on the engine alone
(a session, no Qt), three ways:

* through the widget as it is;
* through the widget with the animated busy bar it had before (an indeterminate QProgressBar);
* the floor: plain napari with the least any plugin needs (a Points layer whose new point runs
  the session on a thread, and a Qt signal that writes the change into a Labels layer). What
  napari itself costs per click on this machine (adding the point, drawing it, the layer list)
  shows here.

Latency runs from adding the point to the mask written into its layer. It prints each click,
then per scenario and way the median latency with its ratio to the engine alone, the quartiles
of the paired per-click ratios (the machine's noise) and the largest stall after the first click
and after the later ones.

For contrast the same prediction is also run on the GUI thread, as the reference plugin does.
Run under a display or ``xvfb-run -a``:

    xvfb-run -a python benchmarks/ui_stall.py [--patch 128] [--repeats 8]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np

WIDGET, ANIMATED, FLOOR = "widget", "widget, animated bar (before)", "plain napari (the floor)"
VARIANTS = (WIDGET, ANIMATED, FLOOR)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patch", type=int, default=128, help="patch edge of the random-weight model (default 128)")
    ap.add_argument("--repeats", type=int, default=8, help="clicks per scenario and variant (default 8)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    args = ap.parse_args()

    import napari
    import torch
    from qtpy.QtCore import QCoreApplication, QElapsedTimer, QEventLoop, QObject, QTimer, Signal

    from napari_nninteractive.core.engines.network import NetworkEngine
    from napari_nninteractive.core.session import Session
    from napari_nninteractive.gui import layers as L
    from napari_nninteractive.gui.annotator import Tool
    from napari_nninteractive.gui.widget import NNInteractiveWidget
    from napari_nninteractive.testing import synthetic_volume, tiny_architecture, write_model_folder

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = write_model_folder(Path(tempfile.mkdtemp()) / "m", tiny_architecture(), (args.patch,) * 3)
    image, labels = synthetic_volume((160, 160, 160))
    obj = np.argwhere(labels == 1)
    centre = [int(v) for v in obj.mean(axis=0).round()]
    viewer = napari.Viewer(show=True)
    layer = viewer.add_image(image, name="scan", visible=False)  # each run shows its own copy, as a user has one
    widget = NNInteractiveWidget(viewer)
    viewer.window.add_dock_widget(widget, name="nnInteractive")
    view = L.image_view(layer)

    clock = QElapsedTimer()
    clock.start()
    ticks: list[tuple[float, float]] = []  # (wall ms, GUI-thread CPU ms) at each tick
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append((clock.nsecsElapsed() / 1e6, time.thread_time() * 1e3)))
    handler_ms: list[float] = []
    written: list[float] = []  # when each change was written into its layer

    def settle(ms: int = 300) -> None:
        end = clock.elapsed() + ms
        while clock.elapsed() < end:
            QCoreApplication.processEvents()

    def wait_idle(runner) -> None:
        """Run Qt's event loop (sleeping between events, as napari does) until the runner is idle; a busy
        ``processEvents`` loop here would take a core and the GIL from the prediction."""
        loop = QEventLoop()
        check = QTimer()
        check.setInterval(5)
        check.timeout.connect(lambda: None if runner.busy else loop.quit())
        check.start()
        loop.exec()
        check.stop()

    def measure(action) -> tuple[float, np.ndarray, tuple[float, float, float] | None]:
        """Seconds ``action`` took (until the mask is in its layer), the gaps between timer ticks (ms), and
        (largest gap, the GUI thread's own CPU time in it, the most GUI CPU in any gap) or ``None`` when too
        short: the rest of a gap is time the thread waited (for a core or for the GIL held by the prediction's
        thread)."""
        settle()
        ticks.clear()
        timer.start()
        written.clear()
        t0 = time.perf_counter()
        action()
        dt = (written[-1] if written else time.perf_counter()) - t0  # until the mask is in its layer
        settle(60)
        timer.stop()
        if len(ticks) < 2:
            return dt, np.zeros(1), None
        wall, cpu = (np.diff(np.asarray(column, dtype=float)) for column in zip(*ticks))
        return dt, wall, (float(wall.max()), float(cpu[int(np.argmax(wall))]), float(cpu.max()))

    cpu_of_gap: list[tuple[float, float, float]] = []

    print(
        f"random-weight model, patch {args.patch}^3, image 160^3, CPU, {torch.get_num_threads()} torch threads; 10 ms timer"
    )
    print(f"{'scenario / run':<34} {'predict s':>9} {'max gap ms':>10} {'p99 ms':>7} {'handler ms':>10}")

    def make_engine(scenario: str):
        engine = NetworkEngine.from_folder(folder, device="cpu", autozoom=False)
        if scenario == "refine":
            net, bright = engine.model.network, float(np.percentile(image[labels == 1], 5))
            norm_thr = (bright - image.mean()) / image.std()

            def fixed_object(x, net=net, thr=norm_thr):
                net(x)  # the real forward pass (its output is replaced)
                fg = (x[:, 0] > thr).float()
                return torch.stack([1 - fg, fg], dim=1)

            engine.model.network = fixed_object
        return engine

    clicks = [[c + (r % 3) - 1 for c in centre] for r in range(args.repeats)]
    old_poll = widget._poll_progress

    def animated_poll():  # the dock before issue 16: an indeterminate (animated) bar while busy
        old_poll()
        busy = widget.annotator.runner is not None and widget.annotator.runner.busy
        widget.progress_bar.setRange(0, 0)
        widget.progress_bar.setVisible(busy)

    class Delivery(QObject):
        """Brings a change from the floor's thread to the GUI thread."""

        change = Signal(object)

    def floor_clicks(session):
        """The floor: what any plugin costs in napari. A Points layer of its own; each added point runs the
        session on a thread, and the change comes back by a Qt signal and is written into a Labels layer."""
        mask = viewer.add_labels(np.zeros(image.shape, np.uint16), name="mask (floor)")  # as the widget's output
        points = viewer.add_points(np.empty((0, 3)), ndim=3, name="clicks (floor)")
        delivery, loop = Delivery(), QEventLoop()

        def write(change):
            try:
                if isinstance(change, BaseException):
                    raise change
                t = time.perf_counter()
                mask.data[tuple(slice(lo, hi) for lo, hi in change.bbox)] = change.values
                mask.refresh()
                handler_ms.append(1e3 * (time.perf_counter() - t))
                written.append(time.perf_counter())
            finally:
                loop.quit()  # never wait for ever

        def predict(click):
            try:
                delivery.change.emit(session.add_point(click))
            except Exception as exc:  # reported on the GUI thread
                delivery.change.emit(exc)

        def added(event):
            if str(getattr(event, "action", "")) == "added":
                click = [int(round(v)) for v in points.data[-1]]
                threading.Thread(target=predict, args=(click,)).start()

        delivery.change.connect(write)
        points.events.data.connect(added)
        return lambda click: (points.add(click), loop.exec())

    def write(*args, original=widget.annotator.output.write, **kwargs):  # the widget's writer, timed (once)
        original(*args, **kwargs)
        written.append(time.perf_counter())  # the mask is in its layer (as for the floor)

    widget.annotator.output.write = write
    results: dict[tuple[str, str], list[float]] = {}
    stalls: dict[tuple[str, str], list[float]] = {}
    for scenario in ("random", "refine"):
        for variant in VARIANTS:
            alone_session = Session(make_engine(scenario))  # the engine alone: the same clicks, each just before
            alone_session.set_image(view.volume)  # the widget's (paired: both see the same load on the machine)
            widget._timer.timeout.disconnect()
            widget._timer.timeout.connect(animated_poll if variant == ANIMATED else old_poll)
            session = Session(make_engine(scenario))
            session.set_image(view.volume)
            # a fresh copy of the image layer each time: its own output layer, no objects of the earlier runs
            for old in list(viewer.layers):
                if old is not layer:
                    viewer.layers.remove(old)
            run_layer = viewer.add_image(image, name=f"scan {scenario} {len(results)}")
            if variant == FLOOR:
                click_once = floor_clicks(session)
            else:

                def click_once(click):
                    widget.annotator.prompt_layers[Tool.POINT].add(click)
                    wait_idle(widget.annotator.runner)

                widget.annotator.attach(L.image_view(run_layer), session)
                on_outcome = widget.annotator._on_outcome

                def timed(outcome, f=on_outcome):
                    t = time.perf_counter()
                    f(outcome)
                    handler_ms.append(1e3 * (time.perf_counter() - t))

                widget.annotator.runner.on_outcome = timed
            times, gaps, alone = [], [], []
            for r, click in enumerate(clicks):
                settle()
                t0 = time.perf_counter()
                alone_session.add_point(click)
                alone.append(time.perf_counter() - t0)
                handler_ms.clear()

                dt, g, gap_cpu = measure(partial(click_once, click))
                if gap_cpu is not None and variant != FLOOR:  # the stall statistics below are the widget's
                    cpu_of_gap.append(gap_cpu)
                times.append(dt)
                gaps.append(float(g.max()))
                print(
                    f"{scenario + ' ' + variant + ' #' + str(r + 1):<34} {dt:9.2f} {g.max():10.1f} "
                    f"{np.percentile(g, 99):7.1f} {sum(handler_ms):10.1f}  (engine alone {alone[-1]:.2f} s)",
                    flush=True,
                )
            results[(scenario, variant)], stalls[(scenario, variant)] = times, gaps
            results[(scenario, variant + " engine")] = alone
            if variant != FLOOR:
                widget.annotator.detach()
    widget._timer.timeout.disconnect()
    widget._timer.timeout.connect(old_poll)

    done = []
    session = Session(make_engine("random"))
    session.set_image(view.volume)

    def blocking():
        loop = QEventLoop()
        QTimer.singleShot(30, lambda: (session.add_point(centre), done.append(1), loop.quit()))
        loop.exec()

    dt, g, _ = measure(blocking)
    print(f"{'GUI thread (reference way)':<34} {dt:9.2f} {g.max():10.1f} {np.percentile(g, 99):7.1f}")
    print(
        "\nprompt-to-mask latency (until the mask is in its layer), median over the clicks (seconds), and its "
        "ratio to the engine alone; in brackets the quartiles of the paired ratios (each click / the same click "
        "just before on the engine alone): how far this machine's noise moves the ratio:"
    )
    for scenario in ("random", "refine"):
        for variant in VARIANTS:
            widget_s, alone_s = results[(scenario, variant)], results[(scenario, variant + " engine")]
            t, engine = np.median(widget_s), np.median(alone_s)
            q1, q3 = np.percentile(np.asarray(widget_s) / np.asarray(alone_s), [25, 75])
            gap = stalls[(scenario, variant)]
            print(
                f"  {scenario:<7} {variant:<30} {t:6.2f} s vs engine {engine:5.2f} s: ratio {t / engine:5.2f} "
                f"[{q1:.2f}-{q3:.2f}] (goal <= 1.10); largest stall: first click {gap[0]:.0f} ms, later clicks "
                f"{max(gap[1:], default=0):.0f} ms (goal <= 50)"
            )
    print(f"prediction on the GUI thread: the viewer stalls {g.max():.0f} ms")
    worst = max(cpu_of_gap)
    print(
        f"through the widget, the largest stall ({worst[0]:.0f} ms) held {worst[1]:.0f} ms of the GUI thread's own "
        f"CPU time; the most GUI-thread CPU in any one gap: {max(c for _, _, c in cpu_of_gap):.0f} ms (the rest "
        "of a stall is waiting for a core or the GIL while the prediction runs)"
    )
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
