"""docs/configuration.md lists exactly the keys the code reads, with their real defaults."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import fields
from pathlib import Path

from scheduler.config import (
    CONFIG_KEYS,
    AlertsConfig,
    CrawlConfig,
    DatabaseConfig,
    LoggingConfig,
    SmtpConfig,
)
from storage.spec import TopicSpec

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"

# Fields of the loaded objects that are not keys of the file, and why.
DERIVED = {
    ("smtp", "password"),  # read from the variable that smtp.password_env names
    ("topic", "crawl"),  # the [crawl] section, merged into each topic
}
# Keys of the file that land in another object's field.
MERGED = {("topic", "obey_robots")}  # the topic's override of crawl.obey_robots


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
    objects = {
        "database": DatabaseConfig,
        "smtp": SmtpConfig,
        "crawl": CrawlConfig,
        "alerts": AlertsConfig,
        "logging": LoggingConfig,
        "topic": TopicSpec,
    }
    keys = {(section, f.name) for section, cls in objects.items() for f in fields(cls)}
    return (keys - DERIVED) | MERGED


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
