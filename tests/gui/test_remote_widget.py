"""The dock widget's Run on *Remote*: controls, Connect against a real in-process server, errors, the API key.

A real ``nninteractive-serve`` (:class:`~napari_nninteractive.server.BackgroundServer`, weight-free
engine) runs in a thread on 127.0.0.1 for the module; the widget connects to it as a user would.
The widget's settings go to ``$NNINTERACTIVE_HOME`` (a temporary folder per test, see conftest).
"""

import logging
import os

import numpy as np
import pytest

from napari_nninteractive.core.api import Capabilities
from napari_nninteractive.core.engines.registry import make_engine
from napari_nninteractive.core.engines.seeded_watershed import SeededWatershedEngine
from napari_nninteractive.core.prompts import PromptKind
from napari_nninteractive.core.remote.client import EXPIRED_NOTICE
from napari_nninteractive.core.remote.transport import API_KEY_ENV
from napari_nninteractive.gui import settings as S
from napari_nninteractive.gui.annotator import Tool
from napari_nninteractive.gui.session_words import kinds_words, undo_words
from napari_nninteractive.gui.widget import INTRO, NNInteractiveWidget

from ..conftest import sphere, sphere_image

server_mod = pytest.importorskip("napari_nninteractive.server")

KEY = "s3cret-Key-for-tests-9f2c"
SHAPE, C, C2, R = (24, 40, 64), (12, 20, 16), (12, 20, 46), 7
DEAD_URL = "http://127.0.0.1:9"


# ----------------------------------------------------------------------------- no Qt needed


def test_undo_and_prompt_kinds_in_words():
    caps = lambda depth, redo, kinds=frozenset(PromptKind): Capabilities("x", "x", kinds, undo_depth=depth, redo=redo)  # noqa: E731
    assert undo_words(caps(1, False)) == "Undo: one level on this server (no redo)."  # the reference server
    assert undo_words(caps(None, True)) == "Undo: unlimited on this server, with redo."  # nninteractive-serve
    assert undo_words(caps(0, False)) == "Undo: not offered by this server."
    assert undo_words(caps(5, True)) == "Undo: 5 levels on this server, with redo."
    assert kinds_words(caps(1, False)) == "point, box, scribble, lasso, initial mask"
    assert kinds_words(caps(1, False, frozenset({PromptKind.LASSO, PromptKind.POINT}))) == "point, lasso"


# ----------------------------------------------------------------------------- servers


def _lasso_free_engine():
    engine = make_engine(engine="weight-free")
    engine.supported_kinds = frozenset({PromptKind.POINT, PromptKind.BBOX, PromptKind.SCRIBBLE})
    return engine


@pytest.fixture(scope="module")
def server():
    """nninteractive-serve with an API key and the weight-free engine (unlimited undo, redo)."""
    with server_mod.BackgroundServer(server_mod.ServerConfig(api_key=KEY, max_sessions=2)) as srv:
        yield srv


@pytest.fixture(scope="module")
def lasso_free_server():
    """A server whose engine takes no lasso and no initial mask, and keeps no undo."""
    source = server_mod.EngineSource.probe(_lasso_free_engine)
    with server_mod.BackgroundServer(server_mod.ServerConfig(undo=False), source) as srv:
        yield srv


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _image():
    image = sphere_image(SHAPE, C, R)
    image[sphere(SHAPE, C2, R)] = 100
    return image


def _widget(viewer, messages=None):
    if "scan" not in viewer.layers:
        viewer.add_image(_image(), name="scan")
    w = NNInteractiveWidget(viewer)
    msgs = [] if messages is None else messages
    w.annotator.notify = lambda msg, level="info": msgs.append(msg)
    return w, msgs


def _connect(w, qtbot, url, key=KEY):
    w.remote_radio.setChecked(True)
    w.server_edit.setText(url)
    w.key_edit.setText(key or "")
    w.init_button.click()
    assert not w.init_button.isEnabled() and w.status_label.text().startswith("Connecting to ")
    qtbot.waitUntil(lambda: w.loader is None, timeout=20000)
    return w.status_label.text()


def _settle(w, qtbot):
    w.annotator.runner.wait(20)
    qtbot.wait(20)


def _sessions(srv):
    return len(srv.host.registry)


def _shown(w, widget):
    return widget.isVisibleTo(w.setup_panel) and widget.isEnabled()


# ----------------------------------------------------------------------------- the controls


@pytest.mark.qt
def test_remote_mode_swaps_the_controls_and_is_remembered(viewer):
    w, _ = _widget(viewer)
    local_only = (w.model_edit, w.hub_combo, w.list_button, w.download_button, w.engine_combo, w.device_combo)
    assert w.local_radio.isChecked() and w.init_button.text() == "Initialize"
    assert all(_shown(w, c) or c is w.device_combo for c in local_only)
    assert not w.server_edit.isVisibleTo(w.setup_panel) and not w.key_edit.isVisibleTo(w.setup_panel)

    w.remote_radio.click()
    assert w.init_button.text() == "Connect" and w.status_label.text() == INTRO[True]
    assert not any(
        c.isVisibleTo(w.setup_panel) or c.isEnabled() for c in (w.model_edit, w.engine_combo, w.device_combo)
    )
    assert not w.hub_combo.isVisibleTo(w.setup_panel) and not w.fold_combo.isVisibleTo(w.setup_panel)
    assert _shown(w, w.server_edit) and _shown(w, w.key_edit) and _shown(w, w.autozoom_check)
    form = w.setup_panel.form
    assert not form.labelForField(w.setup_panel._local_rows[0]).isVisibleTo(w.setup_panel)  # the "Model" label too
    assert form.labelForField(w.server_edit).isVisibleTo(w.setup_panel)
    assert w.key_edit.echoMode() == w.key_edit.EchoMode.Password
    assert API_KEY_ENV in w.key_edit.placeholderText() and ":1527" in w.server_edit.placeholderText()

    again, _ = _widget(viewer)  # a napari restart: the choice is remembered
    assert again.remote_radio.isChecked() and again.init_button.text() == "Connect"
    again.local_radio.click()
    assert again.init_button.text() == "Initialize" and again.status_label.text() == INTRO[False]
    assert _shown(again, again.model_edit) and not again.server_edit.isVisibleTo(again.setup_panel)
    assert S.read_setting(S.RUN_ON) == "local"
    home = os.environ["NNINTERACTIVE_HOME"]
    assert S.widget_settings().fileName().startswith(home)  # tests never touch the user's settings
    with pytest.raises(ValueError):
        S.write_setting("setup/api_key", "x")  # only the listed settings can be written


# ----------------------------------------------------------------------------- end to end


@pytest.mark.qt
def test_connect_segment_undo_redo_save_and_the_key_stays_secret(viewer, qtbot, server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    w, msgs = _widget(viewer)
    text = _connect(w, qtbot, server.url)
    assert w.annotator.ready, text
    lines = text.splitlines()
    assert lines[0].startswith(
        f"Connected: weight-free (seeded watershed) (no weights needed) on the server {server.url}"
    )
    assert "Undo: unlimited on this server, with redo. Prompts: point, box, scribble, lasso, initial mask." in lines
    assert "CPU" not in text  # no network on the server: no CPU warning
    assert _sessions(server) == 1
    assert w.progress_label.text() == "" or not w.progress_label.text().startswith("connecting")

    a = w.annotator
    a.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    out = viewer.layers["nnInteractive objects"]
    first = np.asarray(out.data).copy()
    expected = sphere(SHAPE, C, R)
    assert 2 * ((first == 1) & expected).sum() / ((first == 1).sum() + expected.sum()) > 0.9
    assert w.undo_button.isEnabled() and not w.redo_button.isEnabled()
    w.undo_button.click()
    _settle(w, qtbot)
    assert not np.asarray(out.data).any() and w.redo_button.isEnabled()
    w.redo_button.click()
    _settle(w, qtbot)
    assert np.array_equal(out.data, first) and not w.redo_button.isEnabled()
    w.next_button.click()  # a second object: instance value 2, the first one kept
    a.prompt_layers[Tool.BBOX].add_rectangles(np.array([[12, 13, 39], [12, 13, 53], [12, 27, 53], [12, 27, 39]]))
    _settle(w, qtbot)
    assert set(np.unique(out.data)) == {0, 1, 2} and np.array_equal(out.data == 1, first == 1)
    assert ((out.data == 2) & sphere(SHAPE, C2, R)).sum() > 0.8 * sphere(SHAPE, C2, R).sum()
    both = np.asarray(out.data).copy()
    assert [w.objects_panel.table.item(r, 0).text() for r in range(2)] == ["object 1", "object 2"]
    a.select_object(0)  # reopen the first object: the server gets its mask back
    _settle(w, qtbot)
    assert a.object_id == 0 and np.array_equal(out.data, both)
    w.objects_panel.export(tmp_path / "objects.tif")
    qtbot.waitUntil(lambda: w.objects_panel.export_worker is None, timeout=10000)
    import tifffile

    assert np.array_equal(tifffile.imread(tmp_path / "objects.tif"), both)

    # session file and autosave hold the objects, never the key
    session_file = tmp_path / "remote.npz"
    w.save_session(session_file)
    qtbot.waitUntil(lambda: w.file_worker is None or session_file.exists(), timeout=10000)
    qtbot.waitUntil(lambda: w.autosaver is not None and w.autosaver.saves > 0 and not w.autosaver.busy, timeout=10000)
    secret = KEY.encode()
    home = os.environ["NNINTERACTIVE_HOME"]
    written = [session_file, w.autosaver.path()] + [
        os.path.join(root, f) for root, _, files in os.walk(home) for f in files
    ]
    for path in written:
        with open(path, "rb") as f:
            assert secret not in f.read(), path
    assert S.read_setting(S.SERVERS) == server.url  # the URL is remembered, the key is not
    assert KEY not in w.status_label.text() and all(KEY not in m for m in msgs)
    assert KEY not in caplog.text and KEY not in repr(w.setup_panel.choice())

    # a napari restart: Remote with the last server filled in, the key field empty
    again, _ = _widget(viewer)
    assert again.remote_radio.isChecked() and again.server_edit.text() == server.url and again.key_edit.text() == ""

    # load the session back (a fresh Connect releases the first lease)
    w.init_button.click()
    qtbot.waitUntil(lambda: w.loader is None, timeout=20000)
    assert w.annotator.ready, w.status_label.text()
    qtbot.waitUntil(lambda: _sessions(server) == 1, timeout=10000)
    out.data[...] = 0
    w.load_session(session_file)
    _settle(w, qtbot)
    assert np.array_equal(out.data, both)
    assert "Session loaded" in w.status_label.text()

    # closing the dock releases the lease, without blocking
    w.close()
    qtbot.waitUntil(lambda: _sessions(server) == 0, timeout=10000)


@pytest.mark.qt
def test_an_expired_session_is_renewed_and_the_status_line_says_so(viewer, qtbot, server):
    w, msgs = _widget(viewer)
    _connect(w, qtbot, server.url)
    session = w.annotator.runner.session
    server.host.registry.release(session._lease.token)  # the server forgets the session (idle, or restarted)
    w.annotator.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    assert EXPIRED_NOTICE in w.status_label.text() and EXPIRED_NOTICE in msgs
    assert np.asarray(viewer.layers["nnInteractive objects"].data).any()  # the prompt still predicted
    viewer.layers.remove("scan")  # removing the image ends the session and releases the lease
    qtbot.waitUntil(lambda: _sessions(server) == 0, timeout=10000)
    assert not w.annotator.ready


@pytest.mark.qt
def test_connection_errors_say_what_to_do_without_a_traceback(viewer, qtbot, server, monkeypatch):
    from napari_nninteractive.gui import widget as widget_mod

    errors = []
    real = widget_mod.load_session_worker

    def spied(*args):
        worker = real(*args)
        worker.errored.connect(errors.append)
        return worker

    monkeypatch.setattr(widget_mod, "load_session_worker", spied)
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    w, msgs = _widget(viewer)

    text = _connect(w, qtbot, server.url, key="wrong-key")
    assert text.startswith("Connection failed: The server at") and "refused the API key" in text
    assert "in the API key field" in text and "wrong-key" not in text
    assert "color" in w.status_label.styleSheet() and msgs[-1] == text

    text = _connect(w, qtbot, server.url, key=None)
    assert "needs an API key: enter it in the API key field (or set NN_INTERACTIVE_API_KEY before starting" in text
    assert "--api-key" not in text

    text = _connect(w, qtbot, DEAD_URL)
    assert text.startswith(f"Connection failed: Cannot reach the server at {DEAD_URL}")

    text = _connect(w, qtbot, "")
    assert text == "Connection failed: No server given: fill in Server, e.g. http://gpu-box:1527."

    assert not w.annotator.ready and w.init_button.isEnabled() and not errors
    assert _sessions(server) == 0 and S.read_setting(S.SERVERS) == ""  # nothing remembered from failures

    monkeypatch.setenv(API_KEY_ENV, KEY)  # an empty key field uses the environment variable
    text = _connect(w, qtbot, f" {server.url} , {DEAD_URL}", key=None)  # a pool: the first free one
    assert text.startswith("Connected:"), text
    w.close()
    qtbot.waitUntil(lambda: _sessions(server) == 0, timeout=10000)


# ----------------------------------------------------------------------------- what the session can do


@pytest.mark.qt
def test_tools_the_server_does_not_offer_are_off(viewer, qtbot, lasso_free_server):
    w, msgs = _widget(viewer)
    viewer.window.add_dock_widget(w, name="nnInteractive")
    text = _connect(w, qtbot, lasso_free_server.url, key=None)
    assert "Undo: not offered by this server. Prompts: point, box, scribble." in text
    lasso = w.tool_buttons[Tool.LASSO]
    assert not lasso.isEnabled() and "does not take lasso prompts" in lasso.toolTip()
    assert lasso.toolTip().startswith("Off: The server's model")
    assert all(w.tool_buttons[t].isEnabled() for t in (Tool.POINT, Tool.BBOX, Tool.SCRIBBLE))
    assert not w.prompt_panel.mask_group.isEnabled() and "initial mask" in w.prompt_panel.mask_group.toolTip()
    w.annotator.toggle_tool(Tool.LASSO)  # what the L key does
    assert w.annotator.tool is None and "does not take lasso prompts" in msgs[-1]
    w.annotator.prompt_layers[Tool.POINT].add(list(C))
    _settle(w, qtbot)
    assert np.asarray(viewer.layers["nnInteractive objects"].data).any()
    assert not w.undo_button.isEnabled()  # no undo on this server
    viewer.window.remove_dock_widget(w)  # the dock's close button: the lease is released
    qtbot.waitUntil(lambda: _sessions(lasso_free_server) == 0, timeout=10000)
    assert not w.annotator.ready and "nnInteractive points" not in viewer.layers


@pytest.mark.qt
def test_a_local_engine_without_a_kind_turns_its_tool_off(viewer):
    w, _ = _widget(viewer)
    engine = SeededWatershedEngine()
    engine.supported_kinds = frozenset({PromptKind.POINT, PromptKind.BBOX})
    w.start_with_engine(viewer.layers["scan"], engine)
    w.refresh()
    for tool in (Tool.SCRIBBLE, Tool.LASSO):
        assert not w.tool_buttons[tool].isEnabled()
        assert w.tool_buttons[tool].toolTip().startswith("Off: The weight-free (seeded watershed) engine does not")
    assert w.tool_buttons[Tool.POINT].isEnabled() and not w.prompt_panel.mask_group.isEnabled()
