"""The README and the docs/ pages: navigable, their links resolve, and every `mlops` command in them is one
the CLI accepts as written (choices, options and arguments parsed by the CLI itself, nothing run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from mlops_core.settings import PROJECT_ROOT
from tooling.cli import app

README = PROJECT_ROOT / "README.md"
PAGES = [README, *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
SCREEN_OF_PROSE = 40  # lines of text (not code, not tables) a reader sees without a heading
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(text: str) -> list[tuple[int, str]]:
    outside = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.DOTALL | re.MULTILINE)
    return [(len(m.group(1)), m.group(2)) for m in re.finditer(r"^(#+) (.+)$", outside, re.MULTILINE)]


def shell_blocks(text: str) -> list[str]:
    """The bodies of the page's ```bash blocks."""
    blocks, current, language = [], None, None
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current, language = [], line[3:].strip()
            else:
                if language in ("bash", "sh"):
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def mlops_commands(text: str) -> list[list[str]]:
    """Each `mlops ...` line of the page's shell blocks as argv, continuation lines joined, comments and leading
    VAR=value assignments dropped."""
    commands = []
    for block in shell_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words.pop(0)
            if words[:1] == ["mlops"]:
                commands.append(words[1:])
    return commands


def parse(args: list[str]) -> object:
    """The CLI's own parsing down to the leaf command, as `mlops` would do before running it (typer carries its
    own copy of click, so groups are told apart by what they do)."""
    command = typer.main.get_command(app)
    context = command.make_context("mlops", list(args))
    while hasattr(command, "resolve_command"):
        name, command, rest = command.resolve_command(context, [*context._protected_args, *context.args])
        context = command.make_context(name, rest, parent=context)
    return context


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page: Path) -> None:
    text = page.read_text()
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: link to {target} (no such file)"
        if anchor and linked.suffix == ".md":
            assert anchor in {_slug(h) for _, h in _headings(linked.read_text())}, f"{page.name}: no heading #{anchor}"


def test_readme_contents_links_every_section() -> None:
    text = README.read_text()
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"\]\(#([^)]+)\)", contents))
    sections = {_slug(h) for level, h in _headings(text) if level == 2 and h != "Contents"}
    assert sections <= listed, f"sections missing from the contents: {sections - listed}"


def test_no_section_is_longer_than_a_screen_of_prose() -> None:
    text = re.sub(r"^```.*?^```", "", README.read_text(), flags=re.DOTALL | re.MULTILINE)
    for section in re.split(r"^#+ ", text, flags=re.MULTILINE):
        prose = [line for line in section.splitlines()[1:] if line.strip() and not line.startswith("|")]
        assert len(prose) <= SCREEN_OF_PROSE, f"'{section.splitlines()[0]}': {len(prose)} lines without a heading"


COMMANDS = sorted({(page.name, shlex.join(c)) for page in PAGES for c in mlops_commands(page.read_text())})


def test_the_pages_show_mlops_commands() -> None:
    assert len([c for page, c in COMMANDS if page == "README.md"]) >= 10


@pytest.mark.parametrize(("page", "command"), COMMANDS)
def test_every_mlops_command_in_the_docs_parses(page: str, command: str) -> None:
    parse(shlex.split(command))
