"""The label contract, for every annotation of every sample, over random specs.

A brute-force recount draws each object alone on a canvas padded so nothing is cut off,
and checks the labels of the full composite against it: box = box of mask, masks disjoint,
every mask pixel is one where that object is on top (and every such pixel is in its mask),
visibility and truncation equal the recount, and dropped objects really fail the filter.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import assume, HealthCheck, given, settings
from hypothesis import strategies as st

from synthgen import Generator
from synthgen.compositor.assets import ALPHA_ON
from synthgen.compositor.backend import rasterize
from synthgen.labels import annotate, thickness
from synthgen.compositor.planning import BackgroundPlan, ObjectPlan, Scene, object_cutout
from synthgen.spec import spec_from_dict

from .conftest import base_spec


def alone_mask(gen: Generator, obj, size: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    """The object's own pixels on an unbounded canvas: (mask, x offset, y offset)."""
    cut = object_cutout(gen.library, obj)
    pad = int(obj.size_px * 2 + 8)
    moved = dataclasses.replace(obj, center=(obj.center[0] + pad, obj.center[1] + pad))
    patch, x0, y0 = rasterize(cut, moved)
    if obj.augment_seed is not None and gen.backend.augmenter.object is not None:
        patch = gen.backend.augmenter.apply_object(patch, obj.augment_seed)
    canvas = np.zeros((size[1] + 2 * pad, size[0] + 2 * pad), bool)
    ph, pw = patch.shape[:2]
    canvas[y0 : y0 + ph, x0 : x0 + pw] = patch[..., 3] >= ALPHA_ON
    return canvas, pad, pad


def check_sample(gen: Generator, sample) -> None:
    W, H = sample.size
    scene = sample.scene
    alone = [alone_mask(gen, o, (W, H)) for o in scene.objects]
    in_frame = [m[py : py + H, px : px + W] for m, px, py in alone]
    # Who is on top at each pixel, from the alone masks, last object wins.
    top = np.zeros((H, W), np.int64)
    for k, m in enumerate(in_frame):
        top[m] = k + 1
    union = np.zeros((H, W), bool)
    labelled = set()
    for a in sample.annotations:
        k = a.object_index
        labelled.add(k)
        m = a.mask
        assert m.shape == (H, W) and m.dtype == bool
        ys, xs = np.nonzero(m)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == a.bbox
        assert not (union & m).any(), "masks of two objects overlap"
        union |= m
        np.testing.assert_array_equal(m, top == k + 1)
        own = int(alone[k][0].sum())
        assert a.area == int(m.sum())
        assert abs(a.visibility - m.sum() / own) < 1e-9
        assert abs(a.truncation - (own - int(in_frame[k].sum())) / own) < 1e-9
        assert 0 < a.visibility <= 1 and 0 <= a.truncation < 1
        # amodal: the box of the object drawn alone (it may reach outside the frame), and with
        # amodal masks on its mask cut to the frame, which holds every visible pixel
        am, px, py = alone[k]
        ys, xs = np.nonzero(am)
        assert a.amodal_bbox == (xs.min() - px, ys.min() - py, xs.max() + 1 - px, ys.max() + 1 - py)
        if gen.spec.placement.amodal_masks:
            np.testing.assert_array_equal(a.amodal_mask, in_frame[k])
            assert not (m & ~a.amodal_mask).any()
        assert a.category == scene.objects[k].category
        assert gen.spec.categories[a.category_id] == a.category
        p = gen.spec.placement_for(a.category)
        assert p.min_thickness == 0 or thickness(m) >= p.min_thickness
    for obj in scene.objects:  # max_upscale: never drawn larger than that times the cutout's size
        if obj.shape is None:
            cut = object_cutout(gen.library, obj)
            assert obj.size_px <= gen.spec.placement_for(obj.category).max_upscale * max(cut.size) + 1e-9
            assert obj.upscale_capped == (obj.size_px >= gen.spec.placement_for(obj.category).max_upscale * max(cut.size) - 1e-9)
    for k, obj in enumerate(scene.objects):
        if k in labelled or obj.category is None:  # labelled, or a distractor (never labelled)
            continue
        visible = int((top == k + 1).sum())
        own = int(alone[k][0].sum())
        p = gen.spec.placement_for(obj.category)
        thin = p.min_thickness > 0 and thickness(top == k + 1) < p.min_thickness
        assert visible == 0 or visible / own < p.min_visibility or visible < p.min_area or thin, (
            f"object {k} is visible enough ({visible}/{own}) but has no label"
        )


specs = st.fixed_dictionaries({
    "size": st.tuples(st.integers(24, 160), st.integers(24, 160)),
    "objects": st.tuples(st.integers(0, 4), st.integers(0, 4)).map(sorted),
    "scale": st.tuples(st.floats(0.05, 1.2), st.floats(0.05, 1.2)).map(sorted),
    "rotation": st.sampled_from([0, [-180, 180], [-15, 15], 90]),
    "flip": st.sampled_from([0.0, 0.5, 1.0]),
    "max_truncation": st.sampled_from([0.0, 0.3, 0.9]),
    "min_visibility": st.sampled_from([0.0, 0.25, 0.8]),
    "min_area": st.sampled_from([1, 20]),
    "seed": st.integers(0, 2**32 - 1),
    "blend": st.sampled_from(["none", "gaussian", "poisson", "pyramid", "motion"]),
    "shadow": st.sampled_from([0.0, 1.0]),
    "harmonize": st.sampled_from([0.0, 0.8]),
    "distractors": st.integers(0, 3),
    "augment": st.booleans(),
    "visibility_range": st.sampled_from([None, [0.3, 0.7]]),
    "amodal_masks": st.booleans(),
    "min_thickness": st.sampled_from([0, 0, 4]),
    "max_upscale": st.sampled_from([2.0, 0.5]),
})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=specs, index=st.integers(0, 10**6))
def test_every_label_matches_a_brute_force_recount(assets, params, index):
    raw = base_spec(assets)
    raw["seed"] = params["seed"]
    raw["output"]["size"] = list(params["size"])
    raw["objects_per_image"] = list(params["objects"])
    largest = (params["scale"][1] * min(params["size"])) ** 2
    assume(params["min_area"] <= largest)  # else the spec is refused up front (tested elsewhere)
    raw["placement"] = {
        "scale_range": list(params["scale"]),
        "rotation_range": params["rotation"],
        "flip": params["flip"],
        "max_truncation": params["max_truncation"],
        "min_visibility": params["min_visibility"],
        "min_area": params["min_area"],
        "amodal_masks": params["amodal_masks"],
        "min_thickness": params["min_thickness"],
        "max_upscale": params["max_upscale"],
    }
    if params["visibility_range"] and params["min_visibility"] <= 0.3:
        raw["placement"]["visibility_range"] = params["visibility_range"]
    raw["blend"] = {"modes": {params["blend"]: 1.0}}
    raw["shadow"] = {"p": params["shadow"]}
    raw["harmonize"] = {"strength": params["harmonize"]}
    raw["distractors"] = {"source": str(assets / "pair"), "count": [0, params["distractors"]],
                          "procedural": [0, params["distractors"]], "textures": [str(assets / "bg")]}
    if params["augment"]:
        raw["augment"] = {"object": [{"name": "Perspective", "scale": [0.05, 0.1], "p": 1.0},
                                     {"name": "ColorJitter", "p": 0.5}],
                          "image": [{"name": "GaussNoise", "p": 0.5}]}
    gen = Generator(spec_from_dict(raw))
    check_sample(gen, gen[index])


def _hand_built(assets, *objects: tuple[str, float, tuple[float, float]]):
    """A 100x100 generator and a scene of (class, size_px, centre) objects, unrotated, unflipped,
    bottom to top, with their labels."""
    raw = base_spec(assets)
    raw["output"]["size"] = [100, 100]
    gen = Generator(spec_from_dict(raw))
    scene = Scene(0, 0, (100, 100), "train", BackgroundPlan(gen.library.backgrounds[0], "random_crop", (0, 0)),
                  [ObjectPlan(c, gen.library.cutouts[c][0].image, size, 0, False, centre) for c, size, centre in objects])
    return gen, scene, annotate(gen.spec, scene, gen.backend.render(scene))


def test_occluded_object_is_labelled_by_its_visible_part_only(assets):
    """A hand-built scene: a bar pasted over the middle of a ring splits the ring's mask."""
    gen, scene, anns = _hand_built(assets, ("ring", 60, (50, 50)), ("bar", 100, (50, 50)))
    ring, bar = anns
    assert ring.category == "ring" and bar.category == "bar"
    # the bar (about 13 px tall after scaling) hides a band across the ring's middle
    assert not ring.mask[50, :].any()
    assert ring.visibility < 0.85
    assert bar.visibility == 1.0
    # the ring's box still spans both visible halves: occlusion does not shrink it here
    assert ring.bbox[1] < 25 and ring.bbox[3] > 75
    check_sample(gen, type("S", (), {"size": (100, 100), "scene": scene, "annotations": anns})())


def test_truncation_is_measured_at_the_border(assets):
    # a 60 px bar centred on the left edge: half of it is outside
    _, _, (bar,) = _hand_built(assets, ("bar", 60, (0, 50)))
    assert abs(bar.truncation - 0.5) < 0.05
    assert abs(bar.visibility - (1 - bar.truncation)) < 1e-9
    assert bar.bbox[0] == 0.0
