"""Every setting with its environment variable and description: `mlops settings` and docs/settings.md.

Both are read off the settings object itself, so a new field shows up in both and a field without a
description fails the unit test that regenerates the page.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

from mlops_core.settings import PROJECT_ROOT, Settings

ENV_PREFIX = Settings.model_config["env_prefix"]
NESTED = Settings.model_config["env_nested_delimiter"]


@dataclass(frozen=True)
class SettingRow:
    env: str
    path: tuple[str, ...]
    default: Any
    description: str
    section: str

    def value_in(self, settings: Settings) -> Any:
        value: Any = settings
        for part in self.path:
            value = getattr(value, part)
        return value


def rows(model: type[BaseModel] = Settings, path: tuple[str, ...] = (), section: str = "") -> Iterator[SettingRow]:
    """The leaves of the settings tree in declaration order; a nested model is a section of its own."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from rows(annotation, (*path, name), (annotation.__doc__ or name).strip().splitlines()[0].rstrip("."))
            continue
        default = field.default_factory() if field.default is PydanticUndefined else field.default  # type: ignore[call-arg,misc]
        yield SettingRow(
            env=ENV_PREFIX + NESTED.join(part.upper() for part in (*path, name)),
            path=(*path, name),
            default=default,
            description=field.description or "",
            section=section or "General",
        )


def shown(value: Any, relative: bool = True) -> str:
    """A value as it is written in the environment (JSON for lists and dicts), secrets masked; paths in the
    checkout relative to it when ``relative``, so the generated page is the same on every machine."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, Path) and relative and value.is_relative_to(PROJECT_ROOT):
        return str(value.relative_to(PROJECT_ROOT))
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def as_text(settings: Settings) -> str:
    """`mlops settings`: the effective value of each, with its variable and description."""
    lines: list[str] = []
    section = None
    for row in rows():
        if row.section != section:
            section = row.section
            lines.append(f"# {section}")
        value = shown(row.value_in(settings), relative=False)
        source = "  (from the environment)" if row.env in os.environ else ""
        lines.append(f"{row.env}={value}{source}")
        if row.description:
            lines.append(f"    {row.description}")
    return "\n".join(lines)


def as_markdown() -> str:
    """docs/settings.md: the defaults, generated (`mlops settings --markdown > docs/settings.md`)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")

    lines = [
        "# Settings",
        "",
        "Generated from `mlops_core/settings.py` by `mlops settings --markdown > docs/settings.md`; a unit test",
        "fails when this page and the settings object differ. Every value is read from the environment (or a",
        "`.env` file) under its variable; lists and dicts are JSON. `mlops settings` prints the effective values.",
        "",
    ]
    section = None
    for row in rows():
        if row.section != section:
            section = row.section
            lines += ["", f"## {section}", "", "| variable | default | description |", "|---|---|---|"]
        default = shown(row.default)
        lines.append(f"| `{row.env}` | {f'`{cell(default)}`' if default else ''} | {cell(row.description)} |")
    return "\n".join(lines) + "\n"
