"""The run config: reference.yaml documents every option at its default; errors name the key; --set works."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from foryou.config import RunConfig, load_config
from foryou.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "configs" / "reference.yaml"


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `TableMapping | None`, if any."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def walk(model: type[BaseModel], raw: dict[str, Any], loaded: BaseModel, prefix: str) -> list[str]:
    """Problems: fields missing from the YAML, or set to something other than their default."""
    problems = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            problems.append(f"{key} missing")
            continue
        value, sub = getattr(loaded, name), model_of(field.annotation)
        if sub is not None and isinstance(raw[name], dict):
            problems += walk(sub, raw[name], value, f"{key}.")  # a section: check each of its options
            continue
        if field.is_required():  # data.source, data.interactions.path: no default to compare with
            continue
        default = field.get_default(call_default_factory=True)
        if value != default:
            problems.append(f"{key} = {value!r}, default {default!r}")
    return problems


def test_reference_lists_every_option_at_its_default() -> None:
    raw = yaml.safe_load(REFERENCE.read_text())
    assert walk(RunConfig, raw, load_config(REFERENCE), "") == []


def test_walk_catches_a_missing_and_a_changed_option() -> None:
    raw = yaml.safe_load(REFERENCE.read_text())
    del raw["train"]["epochs"]
    raw["loss"]["temperature"] = 0.5
    loaded = load_config(REFERENCE, ["loss.temperature=0.5"])
    assert walk(RunConfig, raw, loaded, "") == ["loss.temperature = 0.5, default 0.05", "train.epochs missing"]


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: movielens, path: x}\nmodel: {embeding_dim: 64}\n")
    with pytest.raises(ConfigError, match=r"model\.embeding_dim: unknown key"):
        load_config(path)


def test_wrong_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: movielens, path: x}\ntrain: {batch_size: big}\n")
    with pytest.raises(ConfigError, match=r"train\.batch_size: .*integer"):
        load_config(path)


def test_set_overrides() -> None:
    config = load_config(ROOT / "configs" / "demo.yaml", ["train.epochs=3", "split.ratios=[0.8, 0.1, 0.1]"])
    assert config.train.epochs == 3 and config.split.ratios == (0.8, 0.1, 0.1)
    assert config.filters.min_user_interactions == 3  # from the file, untouched
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        load_config(ROOT / "configs" / "demo.yaml", ["train.epochs"])
    with pytest.raises(ConfigError, match=r"train\.epochs: Input should be greater than or equal to 1"):
        load_config(ROOT / "configs" / "demo.yaml", ["train.epochs=0"])


def test_demo_config() -> None:
    config = load_config(ROOT / "configs" / "demo.yaml")
    assert (config.name, config.data.source, config.split.strategy) == ("demo", "uci_online_retail",
                                                                       "leave_last_out")
    assert (config.filters.min_item_interactions, config.filters.min_user_interactions,
            config.filters.iterative) == (2, 3, False)
    assert (ROOT / config.data.path).stat().st_size <= 2_000_000  # type: ignore[operator]
