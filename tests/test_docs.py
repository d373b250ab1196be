"""Documentation stays true to the code."""

from pathlib import Path

from gitaudit.instrumentation.event_catalog import CATALOG, render_markdown
from gitaudit.instrumentation.semconv import EventName

ROOT = Path(__file__).resolve().parent.parent


def test_every_event_name_is_in_the_catalog():
    """Each EventName has a catalog entry (and nothing else does)."""
    assert set(CATALOG) == set(EventName)


def test_events_md_is_generated_from_the_catalog():
    """docs/events.md equals the generator's output; regenerate it when this fails."""
    assert (ROOT / "docs" / "events.md").read_text() == render_markdown()


def test_readme_lists_every_event_name():
    """The README's event list names every EventName."""
    readme = (ROOT / "README.md").read_text()
    missing = [n.value for n in EventName if f"`{n.value}`" not in readme]
    assert not missing, missing
