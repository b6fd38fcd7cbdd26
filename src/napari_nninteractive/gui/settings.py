"""What the dock widget remembers across napari restarts: Local or Remote, and the last server URL(s).

Never the API key: it lives in its field (and in ``NN_INTERACTIVE_API_KEY``) only. The settings go
to Qt's per-user store (``QSettings("napari-nninteractive", "napari-nninteractive")``), or, when
``$NNINTERACTIVE_HOME`` is set, to :data:`SETTINGS_FILE` in that folder, next to the models and
autosaves; the tests set it, so they never touch a user's settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from qtpy.QtCore import QSettings

#: The settings file inside ``$NNINTERACTIVE_HOME`` (when that is set).
SETTINGS_FILE = "widget-settings.ini"
#: Setting names (the only ones written).
RUN_ON = "setup/run_on"
SERVERS = "setup/servers"


def widget_settings() -> QSettings:
    """The widget's settings store (see the module docstring for where it is)."""
    home = os.environ.get("NNINTERACTIVE_HOME")
    if home:
        return QSettings(str(Path(home).expanduser() / SETTINGS_FILE), QSettings.Format.IniFormat)
    return QSettings("napari-nninteractive", "napari-nninteractive")


def read_setting(name: str, default: str = "") -> str:
    """The remembered value ``name`` (a string), or ``default``."""
    value = widget_settings().value(name, default)
    return value if isinstance(value, str) else default


def write_setting(name: str, value: str) -> None:
    """Remember ``value`` under ``name`` (written at once)."""
    if name not in (RUN_ON, SERVERS):  # one list of what may be stored: never a key
        raise ValueError(f"{name!r} is not a widget setting")
    settings = widget_settings()
    settings.setValue(name, value)
    settings.sync()


__all__ = ["RUN_ON", "SERVERS", "SETTINGS_FILE", "read_setting", "widget_settings", "write_setting"]
