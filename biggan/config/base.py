"""Shared pieces of the config tree: the strict base model and value checks."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

SUPPORTED_RESOLUTIONS = (32, 64, 128, 256, 512)

# A local path or a storage URI (s3://bucket/prefix), kept as text: pathlib would turn
# "s3://b/k" into "s3:/b/k". Path objects are accepted and converted.
Location = Annotated[str, BeforeValidator(lambda v: os.fspath(v) if isinstance(v, os.PathLike) else v)]


class Strict(BaseModel):
    """Unknown keys are errors, so a typo in an override never passes silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def check_resolution(value: int | None) -> int | None:
    if value is not None and value not in SUPPORTED_RESOLUTIONS:
        raise ValueError(
            f"resolution {value} is not supported; choose one of {', '.join(map(str, SUPPORTED_RESOLUTIONS))}"
        )
    return value
