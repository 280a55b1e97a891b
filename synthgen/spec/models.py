"""The scene spec: pydantic models, frozen, unknown keys refused.

Sizes are relative to the image where they can be (albumentations' convention): ``scale_range``
is the object's longer side as a fraction of the image's shorter side. Angles are degrees,
counter-clockwise. Probabilities are in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, field_validator, model_validator

from .distributions import Distribution, parse_distribution


def Dist(lo: float | None = None, hi: float | None = None, integer: bool = False) -> Any:
    """A spec value that may vary: a number, [low, high] or a distribution mapping."""
    return Annotated[
        Distribution,
        PlainValidator(lambda v: parse_distribution(v, (lo, hi), integer)),
        PlainSerializer(lambda d: d.to_json(), return_type=Any),
    ]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Output(_Model):
    size: tuple[Annotated[int, Field(ge=8, le=16384)], Annotated[int, Field(ge=8, le=16384)]] = (640, 480)
    """(width, height) in pixels."""
    image_format: Literal["jpg", "png"] = "jpg"
    quality: Annotated[int, Field(ge=1, le=100)] = 95
    formats: list[Literal["coco", "yolo", "voc"]] = ["coco", "yolo", "voc"]
    split: dict[str, Annotated[float, Field(ge=0, le=1)]] = {"train": 1.0}
    coco_segmentation: Literal["rle", "polygon"] = "rle"
    yolo_task: Literal["detect", "segment"] = "detect"

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("split needs at least one name, e.g. {train: 1.0}")
        if abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, they sum to {sum(v.values()):g}")
        for name in v:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"split name {name!r} must be letters, digits, '-' or '_'")
        return v

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))


class Backgrounds(_Model):
    paths: Annotated[list[str], Field(min_length=1)]
    """Files, folders or glob patterns, relative to the spec file."""
    fit: Literal["random_crop", "resize", "pad"] = "random_crop"
    """random_crop: scale to cover the output size, then crop at a random offset;
    resize: stretch to the output size; pad: fit inside, centred, padded with black."""

    @field_validator("paths", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class PlacementOverrides(_Model):
    """Placement keys; every one may be set globally under ``placement`` or per class."""

    scale_range: Dist(1e-3, 10.0) | None = None
    rotation_range: Dist(-360.0, 360.0) | None = None
    flip: Annotated[float, Field(ge=0, le=1)] | None = None
    """Probability of a horizontal flip."""
    max_truncation: Annotated[float, Field(ge=0, lt=1)] | None = None
    """Largest share of an object's pixels that may fall outside the frame."""
    min_visibility: Annotated[float, Field(ge=0, le=1)] | None = None
    """Objects with visible/own pixels below this are not labelled."""
    min_area: Annotated[int, Field(ge=1)] | None = None
    """Objects with fewer visible pixels than this are not labelled."""


class Placement(PlacementOverrides):
    scale_range: Dist(1e-3, 10.0) = parse_distribution([0.2, 0.5])
    rotation_range: Dist(-360.0, 360.0) = parse_distribution(0.0)
    flip: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_truncation: Annotated[float, Field(ge=0, lt=1)] = 0.0
    min_visibility: Annotated[float, Field(ge=0, le=1)] = 0.3
    min_area: Annotated[int, Field(ge=1)] = 64


class ClassSource(PlacementOverrides):
    source: list[str]
    """Folders, files or glob patterns of cutouts, relative to the spec file."""
    mask: str | None = None
    """Mask file name pattern beside each image, e.g. "{stem}.pbm"; omit for RGBA cutouts."""
    mask_inverted: bool = False
    """True when black (0) marks the object in the mask files."""
    weight: Annotated[float, Field(gt=0)] = 1.0
    """Relative frequency of this class when classes are drawn at random (--n)."""

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("mask")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None and "{stem}" not in v:
            raise ValueError('mask pattern must contain "{stem}", e.g. "{stem}.pbm"')
        return v


class Spec(_Model):
    kind: Literal["compositor"] = "compositor"
    seed: int = 0
    output: Output = Output()
    backgrounds: Backgrounds
    classes: Annotated[dict[str, ClassSource], Field(min_length=1)]
    objects_per_image: Dist(0, 1000, integer=True) = parse_distribution([1, 4], (0, 1000), True)
    placement: Placement = Placement()
    base_dir: Annotated[Path, Field(exclude=True)] = Path(".")
    """Folder that relative paths in the spec are resolved against (the spec file's)."""

    @model_validator(mode="after")
    def _class_names(self) -> Spec:
        for name in self.classes:
            if not name.strip():
                raise ValueError("class names must not be empty")
        return self

    def placement_for(self, category: str) -> Placement:
        """The global placement with the class's own overrides applied."""
        own = self.classes[category].model_dump(include=set(PlacementOverrides.model_fields), exclude_none=True)
        return self.placement.model_copy(update={k: getattr(self.classes[category], k) for k in own})

    @property
    def categories(self) -> list[str]:
        return list(self.classes)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
