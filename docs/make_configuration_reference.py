"""Regenerate docs/configuration.md from the configuration keys the loader knows.

    .venv/bin/python docs/make_configuration_reference.py

Every key is declared once, as a field of the dataclass its section becomes; the loader
accepts exactly those keys, and ``scheduler.config.CONFIG_KEYS`` lists them for this page.
tests/test_config_reference.py fails when this file is not current.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scheduler.config import CONFIG_KEYS, SECTIONS  # noqa: E402

TARGET = ROOT / "docs" / "configuration.md"

INTRO = """\
# Configuration reference

topicwatch reads one TOML file: `--config PATH`, else the environment variable
`TOPICWATCH_CONFIG`, else `./topicwatch.toml`. `topicwatch init` writes a commented example
(the same as `deploy/topicwatch.example.toml`). The file is validated at start-up: a key
that is not listed here, or a value of the wrong kind, is refused with the file, the field
and what was expected, for example

    topicwatch.toml: topic[2].every: expected a duration like "15m" or "2h", got "fortnightly"

(`topic[N]` counts the `[[topic]]` tables from 0). On SIGHUP the daemon reads the file again
and keeps the old configuration when the new one is refused.

Value kinds: a *duration* is `"90s"`, `"15m"`, `"2h"`, `"7d"`, `"1w"` or a number of
seconds, at most `"366d"`; a *size* is `"512KB"`, `"10MB"` or a number of bytes.

Secrets never go in the file. They come from the environment:

| variable | meaning |
| --- | --- |
| `TOPICWATCH_CONFIG` | path of the configuration file |
| `TOPICWATCH_DATABASE_URL` | overrides `database.url` |
| the variable named by `smtp.password_env` | the SMTP password |
| `SENTRY_DSN` | enables error reporting and Crons check-ins to Sentry |
"""

HEADINGS = {
    "database": "`[database]`",
    "smtp": "`[smtp]` — optional; without it alerts wait, pending",
    "crawl": "`[crawl]` — applies to every topic",
    "alerts": "`[alerts]`",
    "logging": "`[logging]`",
    "web": "`[web]` — optional; the read-only web view, /metrics and /healthz",
    "executor": "`[executor]` — optional; where crawl runs happen (docs/operations.md)",
    "topic": "`[[topic]]` — one table per watched topic",
}


def render() -> str:
    parts = [INTRO]
    for section in SECTIONS:
        parts.append(f"\n## {HEADINGS[section]}\n\n")
        parts.append("| key | type | default | meaning |\n| --- | --- | --- | --- |\n")
        for key in CONFIG_KEYS:
            if key.section != section:
                continue
            default = f"`{key.default}`" if key.default is not None else "—"
            meaning = key.meaning.replace("|", "\\|")
            parts.append(f"| `{key.name}` | {key.type} | {default} | {meaning} |\n")
    return "".join(parts)


def main() -> int:
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
