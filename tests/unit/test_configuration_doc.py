"""docs/configuration.md is what the settings say (streams/tools/configuration_doc.py): a field
added, renamed, re-described or given another default without `make docs` fails here."""

from pathlib import Path

from streams.settings import Settings
from streams.tools.configuration_doc import PAGE, render, ungrouped

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_one_group_and_described():
    assert ungrouped() == []
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def test_the_configuration_page_is_the_settings_own():
    page = (ROOT / PAGE).read_text()
    assert page == render(), "docs/configuration.md has drifted from Settings: run `make docs`"
    for name in Settings.model_fields:
        assert f"`STREAMREC_{name.upper()}`" in page
