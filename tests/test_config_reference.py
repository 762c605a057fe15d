"""docs/configuration.md lists exactly the keys the code reads, with their real defaults."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import fields
from pathlib import Path

from scheduler.config import CONFIG_KEYS, SECTIONS
from storage.spec import CrawlSettings, TopicSpec

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"

# Fields of the loaded objects that are not keys of the file, and why.
DERIVED = {
    ("smtp", "password"),  # read from the variable that smtp.password_env names
    ("web", "token"),  # read from the variable that web.token_env names
}


def documented_keys() -> set[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    section = ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## `\[+(\w+)\]+`", line)
        if heading:
            section = heading.group(1)
        row = re.match(r"^\| `([a-z_]+)` \|", line)
        if row and section:
            keys.add((section, row.group(1)))
    return keys


def code_keys() -> set[tuple[str, str]]:
    keys = {(name, f.name) for name, section in SECTIONS.items() for f in fields(section)}
    return keys - DERIVED


def test_reference_is_generated_from_the_current_keys() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_configuration_reference", ROOT / "docs" / "make_configuration_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DOC.read_text(encoding="utf-8") == module.render(), (
        "docs/configuration.md is out of date: run docs/make_configuration_reference.py"
    )


def test_every_key_in_the_code_is_documented_and_the_reverse() -> None:
    documented = documented_keys()
    assert documented == {(k.section, k.name) for k in CONFIG_KEYS}
    in_code = code_keys()
    assert in_code - documented == set(), "keys read by the code but not documented"
    assert documented - in_code == set(), "documented keys the code does not read"


def test_a_topic_table_gives_every_field_of_a_topic() -> None:
    """Each field of a stored topic comes from a key of its [[topic]] table, but for the
    crawl settings, which come from [crawl] (and the topic's obey_robots)."""
    topic_keys = {name for section, name in documented_keys() if section == "topic"}
    crawl_keys = {name for section, name in documented_keys() if section == "crawl"}
    assert {f.name for f in fields(TopicSpec)} - topic_keys == {"crawl"}
    assert {f.name for f in fields(CrawlSettings)} <= crawl_keys
