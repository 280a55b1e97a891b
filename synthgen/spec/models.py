"""The scene spec: pydantic models, frozen, unknown keys refused.

Sizes are relative to the image where they can be (albumentations' convention): ``scale_range``
is the object's longer side as a fraction of the image's shorter side. Angles are degrees,
counter-clockwise. Probabilities are in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, PlainValidator, PrivateAttr, field_validator, model_validator

from .distributions import Distribution, parse_distribution


def _range01(v: Any) -> tuple[float, float]:
    if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise ValueError(f"expected [low, high] in [0, 1], got {v!r}")
    lo, hi = float(v[0]), float(v[1])
    if not 0 <= lo <= hi <= 1:
        raise ValueError(f"expected 0 <= low <= high <= 1, got [{lo}, {hi}]")
    return lo, hi


Range01 = Annotated[tuple[float, float], PlainValidator(_range01), PlainSerializer(list, return_type=list)]


def Dist(lo: float | None = None, hi: float | None = None, integer: bool = False) -> Any:
    """A spec value that may vary: a number, [low, high] or a distribution mapping."""
    return Annotated[
        Distribution,
        PlainValidator(lambda v: parse_distribution(v, (lo, hi), integer)),
        PlainSerializer(lambda d: d.to_json(), return_type=Any),
    ]


Paths = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]
"""Files, folders or glob patterns, relative to the spec file: one, or a list."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


class Output(_Model):
    size: tuple[Annotated[int, Field(ge=8, le=16384)], Annotated[int, Field(ge=8, le=16384)]] = (640, 480)
    """(width, height) in pixels."""
    image_format: Literal["jpg", "png"] = "jpg"
    quality: Annotated[int, Field(ge=1, le=100)] = 95
    formats: list[Literal["coco", "yolo", "voc", "bop", "webdataset"]] = ["coco", "yolo", "voc"]
    """Label formats; bop (6D pose) needs kind: renderer."""
    shard_size: Annotated[int, Field(ge=1, le=10_000_000)] = 1000
    """webdataset: images per tar shard."""
    bop_allowed: ClassVar[bool] = False
    depth: bool = True
    """Renderer: write depth maps (16-bit PNG, millimetres) to OUT/depth/<split>/."""
    split: dict[str, Annotated[float, Field(ge=0, le=1)]] = {"train": 1.0}
    coco_segmentation: Literal["rle", "polygon"] = "rle"
    polygon_fill_holes: Annotated[int, Field(ge=0, le=1_000_000)] = 16
    """Polygon mode: holes of fewer pixels than this are filled before tracing (pinholes in a
    cutout's mask would otherwise send the whole object to RLE); 0 keeps every hole."""
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
        if "bop" in v and not cls.bop_allowed:
            raise ValueError("bop (6D pose) needs kind: renderer")
        return list(dict.fromkeys(v))


class Backgrounds(_Model):
    paths: Annotated[Paths, Field(min_length=1)]
    """Files, folders or glob patterns, relative to the spec file."""
    fit: Literal["random_crop", "resize", "pad"] = "random_crop"
    """random_crop: scale to cover the output size, then crop at a random offset;
    resize: stretch to the output size; pad: fit inside, centred, padded with black."""
    regions: str | None = None
    """Placement-region mask file pattern beside each background, e.g. "{stem}_region.png":
    white where objects may stand. A background without such a file allows the whole frame."""

    @field_validator("regions")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None and "{stem}" not in v:
            raise ValueError('regions pattern must contain "{stem}", e.g. "{stem}_region.png"')
        return v



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
    min_thickness: Annotated[float, Field(ge=0)] | None = None
    """Objects whose visible mask is nowhere this many pixels thick (twice its largest inscribed
    radius) are not labelled: a frame, string or pole one or two pixels wide after feathering
    is barely visible. 0 = off."""
    max_upscale: Annotated[float, Field(gt=0)] | None = None
    """An object is drawn at most this many times its cutout's own size (longer side): a 50 px
    cutout drawn at 212 px is a blurred blob with a label."""
    visibility_range: Range01 | None = None
    """Target visibility [low, high]: the placement solver aims each object's visibility at it."""
    truncation_range: Range01 | None = None
    """Target truncation [low, high]: the solver aims each object's truncation at it."""


class Placement(PlacementOverrides):
    mode: Literal["free", "ground"] = "free"
    """free: anywhere; ground: objects stand on the ground (bottom edge on it), smaller farther up."""
    horizon: Annotated[float, Field(ge=0, lt=1)] = 0.35
    """ground: where the ground starts, as a fraction of the image height from the top."""
    far_scale: Annotated[float, Field(gt=0, le=1)] = 0.4
    """ground: size factor of an object standing at the horizon (1.0 at the bottom edge)."""
    scale_range: Dist(1e-3, 10.0) = [0.2, 0.5]
    rotation_range: Dist(-360.0, 360.0) = 0.0
    flip: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_truncation: Annotated[float, Field(ge=0, lt=1)] = 0.0
    min_visibility: Annotated[float, Field(ge=0, le=1)] = 0.3
    min_area: Annotated[int, Field(ge=1)] = 64
    min_thickness: Annotated[float, Field(ge=0)] = 0.0
    max_upscale: Annotated[float, Field(gt=0)] = 2.0
    amodal_masks: bool = False
    """Write each labelled object's amodal mask (the whole object drawn alone, in the frame) as
    COCO amodal_segmentation and as PNGs in OUT/masks/. Amodal boxes are always written."""


class _Source(_Model):
    source: Paths
    """Folders, files or glob patterns of cutouts, relative to the spec file."""
    mask: str | None = None
    """Mask file name pattern beside each image, e.g. "{stem}.pbm"; omit for RGBA cutouts."""
    mask_inverted: bool = False
    """True when black (0) marks the object in the mask files."""
    defringe: Annotated[int, Field(ge=0, le=16)] = 1
    """Pixels at the mask edge whose colour is replaced by the nearest interior colour, so no
    halo of the photo's old background survives; 0 keeps the cutout's colours as they are."""


    @field_validator("mask")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None and "{stem}" not in v:
            raise ValueError('mask pattern must contain "{stem}", e.g. "{stem}.pbm"')
        return v


class ClassSource(_Source, PlacementOverrides):
    weight: Annotated[float, Field(gt=0)] = 1.0
    """Relative frequency of this class when classes are drawn at random (--n)."""


class Distractors(PlacementOverrides):
    """Unlabelled objects pasted with the same machinery; they occlude like any other object."""

    source: Paths = []
    """Cutouts, as for a class (files, folders, globs); may be empty with procedural shapes."""
    mask: str | None = None
    mask_inverted: bool = False
    defringe: Annotated[int, Field(ge=0, le=16)] = 1
    count: Dist(0, 100, integer=True) = 0
    """Cutout distractors per image."""
    procedural: Dist(0, 100, integer=True) = 0
    """Random shapes (ellipses, polygons, rectangles) per image."""
    textures: Paths = []
    """Images to texture procedural shapes with; random solid colours when empty."""



BLEND_MODES = ("none", "gaussian", "poisson", "pyramid", "motion")
BlendMode = Literal["none", "gaussian", "poisson", "pyramid", "motion"]


class Blend(_Model):
    """How each object's edge meets the background; one mode per object, drawn by weight."""

    modes: dict[BlendMode, Annotated[float, Field(ge=0)]] = {"none": 1.0}
    gaussian_sigma: Dist(0.1, 20.0) = [0.5, 1.5]
    """Feathering: sigma (pixels) of the Gaussian blur of the alpha."""
    poisson_mixed: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Probability of OpenCV's MIXED_CLONE instead of NORMAL_CLONE."""
    pyramid_levels: Annotated[int, Field(ge=1, le=8)] = 4
    motion_length: Dist(1.0, 101.0) = [5, 15]
    """Motion blur kernel length, pixels."""
    motion_angle: Dist(-360.0, 360.0) = [0, 180]
    """Motion direction, degrees counter-clockwise."""

    @field_validator("modes")
    @classmethod
    def _some_weight(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or sum(v.values()) <= 0:
            raise ValueError("give at least one blend mode a weight > 0")
        return v


class Harmonize(_Model):
    """Match each object's LAB colour statistics to the background around it."""

    strength: Dist(0.0, 1.0) = 0.0
    """0 = off, 1 = full mean/std transfer."""


class Photometric(_Model):
    """Per-object light and contrast jitter: rgb' = (rgb - 128) * contrast + 128 + 255 * brightness."""

    brightness: Dist(-1.0, 1.0) = 0.0
    contrast: Dist(0.0, 4.0) = 1.0


class Shadow(_Model):
    """Soft drop shadows under objects (never part of masks or boxes)."""

    p: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Probability that an object casts one."""
    offset: Dist(-200.0, 200.0) = [-12, 12]
    """Shift in pixels, drawn for x and y."""
    blur: Dist(0.1, 50.0) = [3, 8]
    """Sigma of the shadow's blur, pixels."""
    opacity: Dist(0.0, 1.0) = [0.2, 0.5]


class AugmentStep(BaseModel):
    """One albumentations transform: {name: GaussNoise, p: 0.5, std_range: [0.02, 0.1]}."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str


class Augment(_Model):
    object: list[AugmentStep] = []
    """Applied to each object before pasting (colour, blur, perspective...); alpha moves with it."""
    image: list[AugmentStep] = []
    """Applied to the finished image (noise, blur, JPEG, colour); pixel-level transforms only."""

def check_voc_names(spec) -> None:
    """VOC's labelmap.txt separates fields with ':' and comments with '#'."""
    if "voc" in spec.output.formats:
        for name in spec.classes:
            if ":" in name or name.startswith("#"):
                raise ValueError(f"class name {name!r}: Pascal VOC's labelmap.txt cannot hold a name with ':' "
                                 "or starting with '#'; rename it or leave voc out of output.formats")


def check_class_names(names) -> None:
    for name in names:
        if not name.strip():
            raise ValueError("class names must not be empty")
        if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in name):
            raise ValueError(f"class name {name!r} holds a control character (not allowed in XML and label files)")
        odd = [ch for ch in name if 0xD800 <= ord(ch) <= 0xDFFF or ord(ch) in (0xFFFE, 0xFFFF)]
        if odd:  # a lone "\udce9" escape in YAML: not a character, no UTF-8 for it, and XML 1.0 has none of them
            raise ValueError(f"class name {name!r} holds {ascii(odd[0])[1:-1]}, which is not a character "
                             "(not allowed in UTF-8 and XML label files)")
        if len(name) > 200:
            raise ValueError(f"class name {name[:40]!r}... is longer than 200 characters")
        if name != name.strip():
            raise ValueError(f"class name {name!r} starts or ends with white space")


Seed = Annotated[int, Field(ge=0, lt=2**63)]


class Spec(_Model):
    kind: Literal["compositor"] = "compositor"
    seed: Seed = 0
    output: Output = Output()
    backgrounds: Backgrounds
    classes: Annotated[dict[str, ClassSource], Field(min_length=1)]
    objects_per_image: Dist(0, 1000, integer=True) = [1, 4]
    placement: Placement = Placement()
    negative_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Share of images with no labelled object at all (distractors may still appear)."""
    distractors: Distractors | None = None
    blend: Blend = Blend()
    write_blend_variants: list[BlendMode] = []
    """Write every planned scene once per listed blend mode (ids end in -<mode>)."""
    harmonize: Harmonize = Harmonize()
    photometric: Photometric = Photometric()
    shadow: Shadow = Shadow()
    augment: Augment = Augment()
    base_dir: Annotated[Path, Field(exclude=True)] = Path(".")
    """Folder that relative paths in the spec are resolved against (the spec file's)."""
    _placements: dict = PrivateAttr(default_factory=dict)

    @field_validator("classes")
    @classmethod
    def _class_names(cls, v: dict) -> dict:
        check_class_names(v)
        return v

    @model_validator(mode="after")
    def _checks(self) -> Spec:
        check_voc_names(self)
        if len(set(self.write_blend_variants)) != len(self.write_blend_variants):
            raise ValueError("write_blend_variants lists a mode twice")
        return self

    def placement_for(self, category: str | None) -> Placement:
        """The global placement with a class's (or, for None, the distractors') overrides applied
        (made once per class: the spec is frozen)."""
        cached = self._placements.get(category)
        if cached is not None:
            return cached
        src = self.distractors if category is None else self.classes[category]
        if src is None:
            p = self.placement
        else:
            own = src.model_dump(include=set(PlacementOverrides.model_fields), exclude_none=True)
            p = self.placement.model_copy(update={k: getattr(src, k) for k in own})
        self._placements[category] = p
        return p

    @property
    def categories(self) -> list[str]:
        return list(self.classes)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
