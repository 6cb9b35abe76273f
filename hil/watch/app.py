"""The textual application of ``pumpemu watch`` (docs/watch.md).

Panels show ``Dashboard``'s texts; an ``EventFeed`` thread posts each event of the stream
as a message (``post_message`` is thread-safe and never waits for the screen), and each
key of ``KEY_ACTIONS`` sends its control request from a worker thread, so neither a slow
pump nor a slow terminal holds the other up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.message import Message
from textual.widgets import Footer, Static

from hil.control import ControlClient, EventStream
from hil.errors import HilError
from hil.watch.feed import EventFeed
from hil.watch.keys import KEY_ACTIONS, QUIT_KEY, KeyAction
from hil.watch.model import Dashboard, instant_of

__all__ = ["PANELS", "WatchApp"]

PANELS: tuple[tuple[str, str], ...] = (
    ("pump", "pump"),
    ("alarms", "alarms and tones"),
    ("truth", "firmware belief beside plant truth"),
    ("faults", "plant faults in force"),
    ("frames", "last frames"),
    ("conformance", "conformance"),
    ("events", "events"),
)
"""(widget id, border title) of each panel, in screen order."""

_KEYS = {action.key: action for action in KEY_ACTIONS}


class PumpEvent(Message):
    """One event of the stream, posted by the feed thread."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class RequestDone(Message):
    """A key's control request has been answered (or failed)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class WatchApp(App[None]):
    """A live view of one pump: ``WatchApp(stream, address, client).run()``.

    ``stream`` is an open ``EventStream`` (the app reads it and closes it when it quits);
    ``client`` makes a ``ControlClient`` for each key's request.
    """

    TITLE = "pumpemu watch"
    CSS = """
    Grid { grid-size: 2 4; grid-rows: auto auto 1fr 1fr; }
    .panel { border: round $accent; padding: 0 1; height: 100%; }
    #truth { row-span: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(a.key, a.action, a.label) for a in KEY_ACTIONS),
        Binding(QUIT_KEY, "quit", "quit"),
    ]

    def __init__(
        self, stream: EventStream, address: str, client: Callable[[], ControlClient]
    ) -> None:
        super().__init__()
        self.dashboard = Dashboard(address)
        self._client = client
        self._feed = EventFeed(stream, lambda event: self.post_message(PumpEvent(event)))
        self.sub_title = address

    def compose(self) -> ComposeResult:
        with Grid():
            for widget_id, title in PANELS:
                panel = Static(id=widget_id, classes="panel")
                panel.border_title = title
                yield panel
        yield Footer()

    def on_mount(self) -> None:
        self._refresh()
        self._feed.start()

    def on_unmount(self) -> None:
        self._feed.stop()

    def on_pump_event(self, message: PumpEvent) -> None:
        self.dashboard.apply(message.event)
        self._refresh()

    def on_request_done(self, message: RequestDone) -> None:
        self.dashboard.note(message.text)
        self._refresh()

    @property
    def feeding(self) -> bool:
        """Is the event stream still being read? (False once the app has quit.)"""
        return self._feed.running

    def panel_text(self, widget_id: str) -> str:
        """What a panel shows now, as plain text (for tests and for copying)."""
        return str(getattr(self.dashboard, f"{widget_id}_text")().plain)

    def _refresh(self) -> None:
        for widget_id, _title in PANELS:
            self.query_one(f"#{widget_id}", Static).update(
                getattr(self.dashboard, f"{widget_id}_text")()
            )

    def action_send(self, key: str) -> None:
        action = _KEYS[key]
        self.run_worker(lambda: self._send(action), thread=True, group="requests")

    def _send(self, action: KeyAction) -> None:
        """Send one key's request (in a worker thread); the answer comes back as a message."""
        try:
            with self._client() as client:
                answer = client.request(action.op, **dict(action.fields))
        except HilError as exc:
            self.post_message(RequestDone(f"{action.label}: failed: {exc}"))
            return
        self.post_message(RequestDone(f"{action.label}: done ({_summary(answer)})"))


def _summary(answer: dict[str, Any]) -> str:
    if "now" in answer:
        return f"pump time {instant_of(answer) or answer.get('now')}"
    if "fault" in answer:
        return f"{answer['fault']} applied"
    return "ok"
