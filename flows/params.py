"""Typed flow parameters, so Prefect's UI renders a form for them.

`ExperimentOverrides` mirrors the config tree (`biggan.config.ExperimentConfig`): every section
and field, with the config's own descriptions, all optional. A field left empty (None) keeps the
preset's value. It is built from the config models, so it follows them as they change.

The command line and scripts pass dotted keys (`{"train.iterations": 500}`); those are accepted
too and kept in `dotted`, which is also the only way to set a value *to* None (a form's empty
field means "keep the preset's"; Prefect also stores parameters with every unset field as null,
so None cannot mean anything else here).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

from biggan.config import EvalConfig, ExperimentConfig
from biggan.presets import PRESETS

# The form's preset field is a list to pick from, not free text.
PresetName = Literal[tuple(sorted(PRESETS))]  # type: ignore[valid-type]

# The form's workers field: a count, or a range "MIN-MAX" (elastic training on nodes that come and go,
# docs/elastic.md); biggan.config.cluster.parse_workers checks it when the config is resolved.
WorkerCount = Annotated[int | Annotated[str, StringConstraints(pattern=r"^\s*\d+\s*(-\s*\d+\s*)?$")],
                        Field(description="a worker count, or a range MIN-MAX (e.g. 2-8)")]


def _open_schema(schema: dict[str, Any]) -> None:
    # Unknown keys are refused when Python validates (a typo is an error, not a no-op), but the
    # JSON schema stays open: Prefect's server checks deployment parameters against it, and
    # `{"train.iterations": 500}` must get through to the validator below.
    schema.pop("additionalProperties", None)


class _Partial(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_open_schema)

    def to_dotted(self, prefix: str = "") -> dict[str, Any]:
        """The fields that were given (not None), as dotted keys."""
        out: dict[str, Any] = {}
        for key in type(self).model_fields:
            value = getattr(self, key)
            if key == "dotted" or value is None:
                continue
            if isinstance(value, _Partial):
                out.update(value.to_dotted(f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out


def _partial(model: type[BaseModel], name: str) -> type[_Partial]:
    """A copy of `model` whose every field is optional (None = not given), sections included."""
    fields: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = _partial(annotation, annotation.__name__.removesuffix("Config") + "Overrides")
        fields[key] = (annotation | None, Field(None, description=info.description))
    return create_model(name, __base__=_Partial, __doc__=f"Overrides of {model.__name__}.", **fields)


_ExperimentFields = _partial(ExperimentConfig, "_ExperimentFields")


class ExperimentOverrides(_ExperimentFields):  # type: ignore[valid-type,misc]
    """Changes to the preset: fill in only what differs (empty = the preset's value)."""

    dotted: dict[str, Any] = Field(
        {}, description='more overrides as dotted keys, e.g. {"train.iterations": 500}; the only way to set '
                        'a value to null')

    @model_validator(mode="before")
    @classmethod
    def _accept_dotted_keys(cls, data: Any) -> Any:
        """Dotted keys (what `--set` gives) go to `dotted` verbatim, None values included."""
        if not isinstance(data, dict):
            return data
        plain = {k: v for k, v in data.items() if "." not in k}
        dotted = {**dict(plain.pop("dotted", None) or {}), **{k: v for k, v in data.items() if "." in k}}
        return {**plain, "dotted": dotted} if dotted else plain

    def to_dotted(self, prefix: str = "") -> dict[str, Any]:
        return {**super().to_dotted(prefix), **self.dotted}

    def get(self, dotted_key: str, default: Any = None) -> Any:
        """One override by dotted key, or `default` when it is not given."""
        return self.to_dotted().get(dotted_key, default)


class EvalOverrides(_partial(EvalConfig, "_EvalFields")):  # type: ignore[misc]
    """Changes to the run's evaluation settings: fill in only what differs."""

    @model_validator(mode="before")
    @classmethod
    def _accept_prefixed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k.removeprefix("eval."): v for k, v in data.items()}
        return data

    def to_dict(self) -> dict[str, Any]:
        return self.to_dotted()


def as_overrides(value: ExperimentOverrides | dict[str, Any] | None) -> ExperimentOverrides:
    """Validated overrides from a model, a (dotted or nested) dict, or None."""
    if isinstance(value, ExperimentOverrides):
        return value
    return ExperimentOverrides.model_validate(value or {})


def as_eval_overrides(value: EvalOverrides | dict[str, Any] | None) -> EvalOverrides:
    if isinstance(value, EvalOverrides):
        return value
    return EvalOverrides.model_validate(value or {})


__all__ = ["EvalOverrides", "ExperimentOverrides", "PresetName", "WorkerCount", "as_eval_overrides", "as_overrides"]
