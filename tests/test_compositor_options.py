"""Compositor options seen on unseen cutouts: small cutouts are not blown up, thin objects can be
left unlabelled, and amodal labels are written as for the renderer."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from synthgen import Generator
from synthgen.cli import app
from synthgen.labels import thickness
from synthgen.spec import spec_from_dict

from .conftest import base_spec, write_spec


def test_small_cutouts_are_not_blown_up_and_the_report_says_how_often(assets, tmp_path):
    raw = base_spec(assets)
    raw["output"]["size"] = [320, 240]
    raw["placement"].update(scale_range=[0.5, 0.6], max_truncation=0.9)  # 120-144 px; the ring is 40 px
    gen = Generator(spec_from_dict(raw))
    for i in range(10):
        for o in gen.plan(i).objects:
            cut = gen.library.cutout(gen.library.ref(o.category, o.asset))
            assert o.size_px <= 2.0 * max(cut.size) + 1e-9
    r = CliRunner().invoke(app, ["generate", str(write_spec(tmp_path / "s.yaml", raw)), "--n", "12", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    placement = json.loads((tmp_path / "o" / "dataset.json").read_text())["placement"]
    assert placement["ring"]["upscale_capped"] == placement["ring"]["placed"] > 0  # 40 px x 2 < 120 px, always
    assert "ring: max_upscale capped the size of" in r.output
    raw["classes"]["ring"]["max_upscale"] = 10.0  # per class
    gen = Generator(spec_from_dict(raw))
    assert not any(o.upscale_capped for i in range(10) for o in gen.plan(i).objects if o.category == "ring")


def test_thin_objects_can_be_left_unlabelled(assets, tmp_path):
    frame = np.zeros((80, 80, 4), np.uint8)
    cv2.rectangle(frame, (3, 3), (76, 76), (200, 180, 40, 255), 2)  # a picture frame, 2 px wide
    (tmp_path / "frame").mkdir()
    cv2.imwrite(str(tmp_path / "frame" / "frame.png"), frame)
    raw = base_spec(assets)
    raw["classes"] = {"frame": {"source": str(tmp_path / "frame"), "max_upscale": 1.0}}
    raw["placement"].update(scale_range=[0.7, 0.8], rotation_range=0, min_visibility=0.0, min_area=1, max_truncation=0)
    labelled = [len(Generator(spec_from_dict(raw))[i].annotations) for i in range(5)]
    assert sum(labelled) > 0
    a = next(a for i in range(5) for a in Generator(spec_from_dict(raw))[i].annotations)
    assert thickness(a.mask) < 4
    raw["placement"]["min_thickness"] = 4
    gen = Generator(spec_from_dict(raw))
    assert sum(len(gen[i].annotations) for i in range(5)) == 0
    square = np.zeros((20, 20), bool)
    square[5:15, 5:15] = True
    assert thickness(square) == pytest.approx(10, abs=1.0)


def test_amodal_boxes_always_and_masks_when_asked(assets, tmp_path):
    raw = base_spec(assets)
    raw["placement"].update(amodal_masks=True, max_truncation=0.6, scale_range=[0.4, 0.8])
    raw["objects_per_image"] = [3, 5]
    gen = Generator(spec_from_dict(raw))
    out = tmp_path / "o"
    gen.generate(out, n=10)
    data = json.loads((out / "annotations" / "instances_train.json").read_text())
    outside = 0
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        ax, ay, aw, ah = ann["amodal_bbox"]
        assert ax <= x and ay <= y and ax + aw >= x + w and ay + ah >= y + h
        outside += ax < 0 or ay < 0 or ax + aw > 128 or ay + ah > 96
        amodal = mask_utils.decode({**ann["amodal_segmentation"], "counts": ann["amodal_segmentation"]["counts"].encode()}).astype(bool)
        visible = mask_utils.decode({**ann["segmentation"], "counts": ann["segmentation"]["counts"].encode()}).astype(bool)
        assert not (visible & ~amodal).any()
        assert amodal.sum() >= visible.sum() and amodal.sum() == round(ann["area"] / ann["visibility"] * (1 - ann["truncation"]))
    assert outside > 0  # truncated objects: the amodal box reaches outside the image
    pngs = sorted((out / "masks" / "train").glob("*.png"))
    assert len(pngs) == len(data["annotations"]) == len(list((out / "masks_visib" / "train").glob("*.png")))
    raw["placement"]["amodal_masks"] = False
    s = Generator(spec_from_dict(raw))[1]
    assert all(a.amodal_bbox is not None and a.amodal_mask is None for a in s.annotations)
