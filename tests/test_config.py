from __future__ import annotations

import re
from pathlib import Path

import pytest

from docqa.config import Settings, settings_table
from docqa.errors import DocqaError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_in_the_readme_table_with_its_default():
    rows = dict(re.findall(r"^\| `(DOCQA_[A-Z0-9_]+)` \| `([^`]*)` \|", README.read_text(), re.M))
    for env, default, _ in settings_table():
        assert env in rows, f"{env} is missing from the README's configuration table"
        assert rows[env] == default, f"README says {env} defaults to {rows[env]!r}, code says {default!r}"
    assert set(rows) == {env for env, _, _ in settings_table()}, "README lists settings the code does not have"


def test_settings_read_from_environment_and_typed():
    s = Settings.from_env({"DOCQA_TOP_K": "9", "DOCQA_MODERATION_FAIL_OPEN": "true", "DOCQA_OPENAI_TIMEOUT": "2.5"})
    assert (s.top_k, s.moderation_fail_open, s.openai_timeout) == (9, True, 2.5)
    assert Settings.from_env({}).top_k == Settings().top_k


def test_bad_setting_names_the_variable():
    with pytest.raises(DocqaError, match="DOCQA_TOP_K='many' is not a valid int"):
        Settings.from_env({"DOCQA_TOP_K": "many"})
