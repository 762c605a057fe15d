"""The README says what the code does: its Python example runs and prints what it claims."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)


def test_python_api_example_prints_what_its_comments_say() -> None:
    (block,) = code_blocks("python")
    expected = [
        line.split("#", 1)[1].strip()
        for line in block.splitlines()
        if line.startswith("print(") and "#" in line
    ]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), {})
    assert out.getvalue().splitlines() == expected


def test_the_two_commands_exist_and_ci_runs_the_second() -> None:
    first, second = (line.split("#")[0].strip() for line in code_blocks("sh")[0].splitlines())
    assert (first, second) == ("scripts/start", "scripts/check")
    for command in (first, second):
        script = ROOT / command
        assert script.is_file()
        assert script.stat().st_mode & 0o111, f"{command} is not executable"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec scripts/check" in ci


def test_documents_the_readme_links_to_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
