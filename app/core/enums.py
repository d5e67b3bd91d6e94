"""Enums with their Chinese and English labels, served by GET /api/v1/meta/enums."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

REGISTRY: dict[str, type[LabeledEnum]] = {}


class LabeledEnum(StrEnum):
    """Members are declared as `value = "value", "中文", "English"`."""

    zh: str
    en: str

    def __new__(cls, value: str, zh: str = "", en: str = "") -> LabeledEnum:
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.zh = zh or value
        obj.en = en or value.replace("_", " ").capitalize()
        return obj

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        REGISTRY[_snake(cls.__name__)] = cls


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def describe_all(language: str = "en") -> dict[str, list[dict[str, str]]]:
    """Every enum's values with both labels, and `label` in `language` ("zh" or "en")."""
    return {
        name: [{"value": m.value, "zh": m.zh, "en": m.en, "label": m.zh if language == "zh" else m.en}
               for m in enum]
        for name, enum in sorted(REGISTRY.items())
    }
