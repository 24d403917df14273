"""docs/configuration.md documents every configuration key, and its example is valid."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel

from core import Settings, load_settings

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(keys(annotation, f"{prefix}{name}."))
        else:
            found.append(f"{prefix}{name}")
    return found


def test_every_key_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [key for key in keys(Settings) if f"`{key}`" not in text]
    assert missing == []


def test_the_example_is_valid(tmp_path: Path) -> None:
    block = re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None
    path = tmp_path / "example.toml"
    path.write_text(block.group(1))
    assert tomllib.loads(block.group(1))
    assert load_settings(path, env={}).display.rotation == 90
