"""The top of the dock: what runs (model, device, licence) and a banner of offers and warnings.

The status line below the tabs carries the news of the moment and is overwritten by the next;
what must stay in sight until the user acts lives here instead:

* :class:`FactsLine`: one line that always says what segments (engine or model, fold, device,
  licence, or the server), or how to start;
* :class:`Banner`: offers and warnings (an autosave to restore, a CPU that will be slow, a
  time point other than the session's), each a row with its own action button and a close
  button, keyed so that a newer version of the same news replaces the older one.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

#: Row colours per level (background, text): readable on napari's dark and light themes.
_STYLES = {
    "info": "background-color: #2f5f8f; color: white; border-radius: 3px;",
    "offer": "background-color: #e0a030; color: black; border-radius: 3px;",
    "warning": "background-color: #a05a20; color: white; border-radius: 3px;",
}


class _Row(QFrame):
    def __init__(self, text: str, level: str, action: tuple[str, Callable[[], None]] | None, close) -> None:
        super().__init__()
        self.setStyleSheet(f"QFrame {{ {_STYLES.get(level, _STYLES['info'])} }}")
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 3, 3, 3)
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        row.addWidget(self.label, 1)
        self.action_button = None
        if action is not None:
            self.action_button = QPushButton(action[0])
            self.action_button.clicked.connect(lambda: action[1]())
            row.addWidget(self.action_button)
        self.close_button = QPushButton("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.setFlat(True)
        self.close_button.setFixedWidth(24)
        self.close_button.clicked.connect(close)
        row.addWidget(self.close_button)


class Banner(QWidget):
    """Offers and warnings that stay until dismissed or acted on (rows keyed by what they are about)."""

    def __init__(self) -> None:
        super().__init__()
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        #: The rows shown, by key.
        self.rows: dict[str, _Row] = {}
        self.setVisible(False)

    def post(
        self, key: str, text: str, level: str = "info", action: tuple[str, Callable[[], None]] | None = None
    ) -> None:
        """Show ``text`` (``level``: ``info``, ``offer`` or ``warning``) with an optional ``(button text,
        callback)``; replaces the row of the same ``key``."""
        self.remove(key)
        row = _Row(text, level, action, lambda: self.remove(key))
        self.rows[key] = row
        self._layout.addWidget(row)
        self.setVisible(True)

    def remove(self, key: str) -> None:
        """Take the row of ``key`` away (nothing if there is none)."""
        row = self.rows.pop(key, None)
        if row is not None:
            self._layout.removeWidget(row)
            row.setParent(None)
            row.deleteLater()
        self.setVisible(bool(self.rows))

    def text(self, key: str) -> str | None:
        """The text of ``key``'s row, or ``None``."""
        row = self.rows.get(key)
        return row.label.text() if row is not None else None


class FactsLine(QLabel):
    """One line that always says what segments, or how to start."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.setWordWrap(True)
        self.setStyleSheet("QLabel { font-weight: bold; }")

    def show_facts(self, *parts: str | None) -> None:
        """``part · part · ...`` of the parts given (``None`` and empty ones left out)."""
        self.setText(" · ".join(p for p in parts if p))


__all__ = ["Banner", "FactsLine"]
