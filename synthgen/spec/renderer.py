"""The 3D renderer's spec (``kind: renderer``): meshes, placement, camera, lights, materials.

Units: metres, degrees, Kelvin. The world is z-up with the ground plane at z = 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from .models import Augment, Dist, Output, Paths, Seed, _Model, check_class_names, check_voc_names


def _on_off(v: Any) -> Any:
    """YAML reads on/off/yes/no as booleans: take them as the words they were."""
    return ("on" if v else "off") if isinstance(v, bool) else v


Switch = Annotated[Literal["auto", "on", "off"], BeforeValidator(_on_off)]


class MeshClass(_Model):
    mesh: str
    """OBJ (with MTL and textures beside it), GLB/glTF, PLY or STL, relative to the spec file."""
    size: Annotated[float, Field(gt=0, le=100)] | None = 0.1
    """Longest extent of the mesh in metres after loading (normalises odd mesh units)."""
    scale: Annotated[float, Field(gt=0)] | None = None
    """Metres per mesh unit, instead of ``size``."""
    weight: Annotated[float, Field(gt=0)] = 1.0
    up_axis: Literal["z", "y", "x", "-z", "-y", "-x"] | None = None
    """The mesh file's up axis; it is turned to +z. Default from the format: glTF/GLB are y-up by
    definition, OBJ/PLY/STL/OFF are taken as z-up (many scans are y-up: say so here)."""
    shading: Literal["auto", "smooth", "flat"] = "auto"
    """auto: smooth, with creases kept where faces meet at more than 30 degrees; smooth: normals
    averaged over every vertex; flat: faceted."""
    min_visibility: Annotated[float, Field(ge=0, le=1)] | None = None
    min_area: Annotated[int, Field(ge=1)] | None = None
    min_thickness: Annotated[float, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> MeshClass:
        if self.scale is not None and "size" in self.model_fields_set and self.size is not None:
            raise ValueError("give size (metres, longest extent) or scale (metres per mesh unit), not both")
        if self.scale is None and self.size is None:
            raise ValueError("give size (metres, longest extent) or scale (metres per mesh unit)")
        return self


class RenderPlacement(_Model):
    mode: Literal["on_ground", "in_volume"] = "on_ground"
    """on_ground: resting on z = 0 at their lowest point, random yaw, no interpenetration;
    in_volume: random 3D rotation anywhere in ``volume``."""
    area: tuple[tuple[float, float], tuple[float, float]] = ((-0.25, -0.25), (0.25, 0.25))
    """on_ground: ((x_min, y_min), (x_max, y_max)) in metres where objects may stand."""
    volume: tuple[tuple[float, float, float], tuple[float, float, float]] = ((-0.2, -0.2, 0.0), (0.2, 0.2, 0.3))
    upright: Annotated[float, Field(ge=0, le=1)] = 1.0
    """on_ground: probability that an object stands as modelled (else tipped at random)."""
    min_visibility: Annotated[float, Field(ge=0, le=1)] = 0.2
    min_area: Annotated[int, Field(ge=1)] = 64
    min_thickness: Annotated[float, Field(ge=0)] = 0.0
    """Objects whose visible mask is nowhere this many pixels thick are not labelled; 0 = off."""
    amodal_masks: bool = False
    """Amodal masks for every labelled object (one small render pass each). Amodal boxes are always given."""


class Intrinsics(_Model):
    """Pinhole intrinsics, pixels, OpenCV convention (pixel centres at integer coordinates)."""

    fx: Annotated[float, Field(gt=0)]
    fy: Annotated[float, Field(gt=0)]
    cx: float
    cy: float


class RenderCamera(_Model):
    azimuth: Dist(-720, 720) = [0, 360]
    elevation: Dist(-90, 90) = [25, 65]
    distance: Dist(0.01, 1000) = [0.6, 1.0]
    roll: Dist(-180, 180) = 0
    fov: Dist(1, 170) = [45, 60]
    """Vertical field of view, degrees (ignored with ``intrinsics``)."""
    target: tuple[float, float, float] = (0.0, 0.0, 0.05)
    target_jitter: Annotated[float, Field(ge=0)] = 0.03
    """Metres the look-at point moves at random in x and y."""
    intrinsics: Intrinsics | None = None
    znear: Annotated[float, Field(gt=0)] = 0.01
    zfar: Annotated[float, Field(gt=0)] = 100.0


class Lights(_Model):
    directional: Dist(0, 8, integer=True) = [1, 2]
    point: Dist(0, 8, integer=True) = [0, 2]
    spot: Dist(0, 8, integer=True) = [0, 1]
    intensity: Dist(0, 1000) = [0.6, 1.5]
    """Directional lights (pyrender units); point and spot lights get ``point_intensity``."""
    point_intensity: Dist(0, 10000) = [0.5, 2]
    temperature: Dist(1000, 40000) = [3500, 7500]
    """Colour temperature, Kelvin."""
    ambient: Dist(0, 1) = [0.1, 0.35]
    shadows: Switch = "auto"
    """Shadows cast by directional and spot lights (pyrender's shadow maps; point lights cast
    none): auto = on in scenes with a ground plane, where objects would otherwise look pasted."""
    exposure: Annotated[Literal["auto", "off"], BeforeValidator(_on_off)] = "auto"
    """auto: dim the lights of a sample (and draw it again) while a labelled object has more than
    max_clipped of its visible pixels near white."""
    max_clipped: Annotated[float, Field(ge=0, le=1)] = 0.02


class Materials(_Model):
    """Per object, one of: keep the mesh's own material, a random colour, a texture from a folder."""

    modes: dict[Literal["keep", "color", "texture"], Annotated[float, Field(ge=0)]] = {"keep": 1.0}
    metallic: Dist(0, 1) = [0.0, 0.4]
    roughness: Dist(0, 1) = [0.3, 1.0]
    textures: Paths = []
    double_sided: Switch = "auto"
    """Draw (and light) both sides of faces in the colour pass, so the inside of an open mesh
    shows: auto = for open meshes (not closed once vertices are merged by position; a closed
    mesh never shows the back of a face, and culling it halves the work), on = every mesh, off =
    none. Label passes always draw both sides of open meshes."""



class RenderBackground(_Model):
    """Behind the objects, one of: a photo (composited with the render's alpha), a solid colour,
    or a textured ground plane, by weight."""

    modes: dict[Literal["image", "color", "ground"], Annotated[float, Field(ge=0)]] = {"color": 1.0}
    paths: Paths = []
    """Background photos (files, folders, globs)."""
    textures: Paths = []
    """Ground plane textures."""



class RenderDistractors(_Model):
    """Procedural primitives (box, sphere, cylinder, capsule, cone) with random materials, unlabelled."""

    count: Dist(0, 64, integer=True) = 0
    size: Dist(0.001, 10) = [0.03, 0.08]
    """Longest extent, metres."""


class RenderOutput(Output):
    bop_allowed: ClassVar[bool] = True


class RendererSpec(_Model):
    kind: Literal["renderer"]
    seed: Seed = 0
    output: RenderOutput = RenderOutput()
    classes: Annotated[dict[str, MeshClass], Field(min_length=1)]
    objects_per_image: Dist(0, 64, integer=True) = [1, 4]
    negative_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0
    placement: RenderPlacement = RenderPlacement()
    distractors: RenderDistractors = RenderDistractors()
    camera: RenderCamera = RenderCamera()
    lights: Lights = Lights()
    materials: Materials = Materials()
    background: RenderBackground = RenderBackground()
    augment: Augment = Augment()
    base_dir: Annotated[Path, Field(exclude=True)] = Path(".")

    @field_validator("classes")
    @classmethod
    def _class_names(cls, v: dict) -> dict:
        check_class_names(v)
        return v

    @model_validator(mode="after")
    def _checks(self) -> RendererSpec:
        check_voc_names(self)
        if self.augment.object:
            raise ValueError("augment.object is for the compositor; the renderer takes augment.image only")
        if self.materials.modes.get("texture") and not self.materials.textures:
            raise ValueError("materials.modes has texture but materials.textures is empty")
        if self.background.modes.get("image") and not self.background.paths:
            raise ValueError("background.modes has image but background.paths is empty")
        if self.background.modes.get("ground") and not self.background.textures:
            raise ValueError("background.modes has ground but background.textures is empty")
        return self

    # The same surface the generator, scheduler and writers use for the compositor.
    @property
    def categories(self) -> list[str]:
        return list(self.classes)

    @property
    def write_blend_variants(self) -> list[str]:
        return []

    def placement_for(self, category: str | None) -> RenderPlacement:
        if category is None:
            return self.placement
        c = self.classes[category]
        own = {k: getattr(c, k) for k in ("min_visibility", "min_area", "min_thickness") if getattr(c, k) is not None}
        return self.placement.model_copy(update=own)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
