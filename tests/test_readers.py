"""What we write, read by the readers people train and evaluate with.

In CI: pycocotools (keypoint evaluation with the shipped sigmas), Hugging Face ``datasets``
(``imagefolder`` with metadata.jsonl), BOP files read by the format the BOP toolkit documents.
The ``readers`` tier needs the heavy install (``pip install torch==2.14.1 torchvision==0.29.1
datumaro ultralytics``, about 6 GB) and skips without it: torchvision's ``VOCDetection`` and
``CocoDetection``, datumaro's ``voc`` and ``coco`` importers, ultralytics' YOLO label scan.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from synthgen import Generator
from synthgen.spec import spec_from_dict

from .conftest import base_spec, needs_gl

VOC = Path("voc/VOCdevkit/VOC2012")


@pytest.fixture(scope="module")
def compositor_run(assets, tmp_path_factory):
    raw = base_spec(assets)
    raw["objects_per_image"] = [0, 4]
    raw["output"].update(formats=["coco", "yolo", "voc"], split={"train": 0.7, "val": 0.3})
    gen = Generator(spec_from_dict(raw))
    out = tmp_path_factory.mktemp("readers") / "out"
    gen.generate(out, n=30)
    return gen, out


@pytest.fixture(scope="module")
def renderer_run(shared, tmp_path_factory):
    from .test_renderer import _spec

    raw = _spec(shared, output={"size": [320, 240], "formats": ["coco", "bop"], "split": {"train": 1.0}})
    gen = Generator(spec_from_dict(raw))
    out = tmp_path_factory.mktemp("render") / "out"
    gen.generate(out, n=6)
    return gen, out


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _quiet(fn, *a):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a)


# -- Hugging Face datasets -------------------------------------------------------------------
def test_hugging_face_imagefolder_gives_images_with_their_objects(compositor_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    gen, out = compositor_run
    ds = datasets.load_dataset("imagefolder", data_dir=str(out / "images"), cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "validation"}  # imagefolder calls a "val" folder "validation"
    manifest = {m["index"]: m for m in _manifest(out)}
    seen = 0
    for split in ds:
        for row in ds[split]:
            m = manifest[row["image_id"]]
            assert row["image"].size == tuple(gen.spec.output.size)
            assert len(row["objects"]["bbox"]) == len(m["labels"])
            for box, cat, area, lab in zip(row["objects"]["bbox"], row["objects"]["category"], row["objects"]["area"], m["labels"]):
                x0, y0, x1, y1 = lab["bbox"]
                assert box == pytest.approx([x0, y0, x1 - x0, y1 - y0])
                assert gen.spec.categories[cat] == lab["category"] and area == lab["area"]
            seen += 1
    assert seen == 30
    assert not any((out / "images").rglob("*.png")) or gen.spec.output.image_format == "png"  # no depth/BOP images in images/


# -- keypoints -------------------------------------------------------------------------------
@needs_gl()
def test_keypoints_evaluate_with_the_shipped_sigmas(renderer_run):
    gen, out = renderer_run
    f = out / "annotations" / "instances_train.json"
    gt = _quiet(COCO, str(f))
    sigmas = gt.dataset["categories"][0]["keypoint_sigmas"]
    assert len(sigmas) == len(gt.dataset["categories"][0]["keypoints"]) == 9
    dets = [{**a, "score": 1.0} for a in gt.dataset["annotations"]]
    dt = _quiet(gt.loadRes, dets)
    ev = COCOeval(gt, dt, "keypoints")
    with pytest.raises(Exception):  # pycocotools' defaults are the 17 person sigmas
        _quiet(ev.evaluate)
    ev = COCOeval(gt, dt, "keypoints")
    ev.params.kpt_oks_sigmas = np.array(sigmas)
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    assert ev.stats[0] == pytest.approx(1.0)


# -- BOP -------------------------------------------------------------------------------------
def read_bop_ply(path: Path) -> dict[str, np.ndarray]:
    """A PLY read as the BOP toolkit's ``inout.load_ply`` reads it: header properties in order,
    binary fields of its five types (float, double, int, uint, uchar) in native byte order,
    triangles only."""
    types = {"float": ("f", 4), "double": ("d", 8), "int": ("i", 4), "uint": ("I", 4), "uchar": ("B", 1)}
    with open(path, "rb") as f:
        vprops, fprops, section, n_v, n_f = [], [], None, 0, 0
        while True:
            line = f.readline().decode("utf8").strip()
            if line.startswith("format"):
                assert "binary_little_endian" in line or "ascii" in line
            if line.startswith("element vertex"):
                n_v, section = int(line.split()[-1]), "v"
            elif line.startswith("element face"):
                n_f, section = int(line.split()[-1]), "f"
            elif line.startswith("property list") and section == "f":
                _, _, count_t, index_t, name = line.split()
                assert name in ("vertex_indices", "vertex_index")
                fprops = [types[count_t], types[index_t]]
            elif line.startswith("property") and section == "v":
                _, t, name = line.split()
                vprops.append((name, types[t]))  # a KeyError here: BOP cannot read the type
            elif line == "end_header":
                break
        names = [n for n, _ in vprops]
        pts = np.zeros((n_v, len(vprops)))
        for i in range(n_v):
            pts[i] = [struct.unpack(t[0], f.read(t[1]))[0] for _, t in vprops]
        faces = np.zeros((n_f, 3), int)
        for i in range(n_f):
            n = struct.unpack(fprops[0][0], f.read(fprops[0][1]))[0]
            assert n == 3, "BOP reads triangles only"
            faces[i] = [struct.unpack(fprops[1][0], f.read(fprops[1][1]))[0] for _ in range(3)]
    return {"pts": pts[:, [names.index(c) for c in "xyz"]],
            "normals": pts[:, [names.index(c) for c in ("nx", "ny", "nz")]], "faces": faces}


@needs_gl()
def test_bop_models_load_with_normals_and_the_bop_diameter(renderer_run):
    gen, out = renderer_run
    info = json.loads((out / "bop" / "models" / "models_info.json").read_text())
    for i, name in enumerate(gen.spec.classes):
        model = read_bop_ply(out / "bop" / "models" / f"obj_{i + 1:06d}.ply")
        pts = model["pts"]
        mesh = gen.library.mesh(name)
        np.testing.assert_allclose(pts, np.asarray(mesh.vertices) * 1000.0, atol=1e-3)  # millimetres
        assert len(model["faces"]) == len(mesh.faces) and model["faces"].max() < len(pts)
        np.testing.assert_allclose(np.linalg.norm(model["normals"], axis=1), 1.0, atol=1e-3)
        # diameter: the largest distance between two vertices (BOP's definition), all pairs
        d = info[str(i + 1)]["diameter"]
        assert d == pytest.approx(_all_pairs(pts), rel=1e-6)  # the PLY holds float32
        lo, hi = pts.min(0), pts.max(0)
        assert d < np.linalg.norm(hi - lo) + 1e-9  # never the box diagonal's overestimate
        assert info[str(i + 1)]["min_x"] == pytest.approx(lo[0], abs=1e-3)


def _all_pairs(pts: np.ndarray) -> float:
    best = 0.0
    for i in range(0, len(pts), 500):
        best = max(best, float(((pts[i:i + 500, None] - pts[None]) ** 2).sum(-1).max()))
    return float(np.sqrt(best))


@needs_gl()
def test_bop_scene_files_are_what_the_toolkit_expects(renderer_run):
    gen, out = renderer_run
    scene = out / "bop" / "train" / "000000"
    gt = json.loads((scene / "scene_gt.json").read_text())
    cam = json.loads((scene / "scene_camera.json").read_text())
    info = json.loads((scene / "scene_gt_info.json").read_text())
    assert set(gt) == set(cam) == set(info)
    for im, objs in gt.items():
        assert len(cam[im]["cam_K"]) == 9 and cam[im]["depth_scale"] == 1.0
        for j, o in enumerate(objs):
            assert len(o["cam_R_m2c"]) == 9 and len(o["cam_t_m2c"]) == 3 and 1 <= o["obj_id"] <= len(gen.spec.classes)
            R = np.array(o["cam_R_m2c"]).reshape(3, 3)
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)
            assert (scene / "mask_visib" / f"{int(im):06d}_{j:06d}.png").exists()
            assert (scene / "mask" / f"{int(im):06d}_{j:06d}.png").exists()
            assert set(info[im][j]) >= {"bbox_obj", "bbox_visib", "px_count_all", "px_count_valid", "px_count_visib", "visib_fract"}


# -- the readers tier: torchvision, datumaro, ultralytics ------------------------------------
@pytest.mark.readers
def test_torchvision_voc_detection_reads_our_voc(compositor_run):
    datasets = pytest.importorskip("torchvision.datasets")
    gen, out = compositor_run
    manifest = _manifest(out)
    for split in ("train", "val"):
        ds = datasets.VOCDetection(str(out / "voc"), year="2012", image_set=split, download=False)
        want = [m for m in manifest if m["split"] == split]
        assert len(ds) == len(want) > 0
        for (image, target), m in zip(ds, want):
            assert image.size == tuple(gen.spec.output.size)
            objs = target["annotation"].get("object", [])
            assert [o["name"] for o in objs] == [lab["category"] for lab in m["labels"]]
            for o, lab in zip(objs, m["labels"]):
                b = o["bndbox"]
                x0, y0, x1, y1 = lab["bbox"]
                assert [int(b["xmin"]), int(b["ymin"]), int(b["xmax"]), int(b["ymax"])] == [int(x0) + 1, int(y0) + 1, int(x1), int(y1)]
    assert len(datasets.VOCDetection(str(out / "voc"), year="2012", image_set="trainval")) == len(manifest)


@pytest.mark.readers
def test_torchvision_coco_detection_reads_our_coco(compositor_run):
    datasets = pytest.importorskip("torchvision.datasets")
    gen, out = compositor_run
    ds = datasets.CocoDetection(str(out / "images" / "train"), str(out / "annotations" / "instances_train.json"))
    ds = datasets.wrap_dataset_for_transforms_v2(ds, target_keys=["boxes", "labels", "masks", "image_id"])
    for image, target in ds:
        if "boxes" in target:
            assert target["masks"].shape[1:] == (gen.spec.output.size[1], gen.spec.output.size[0])
            assert (target["masks"].flatten(1).sum(1) > 0).all()


@pytest.mark.readers
def test_datumaro_reads_our_voc_and_coco(compositor_run):
    dm = pytest.importorskip("datumaro")
    gen, out = compositor_run
    manifest = _manifest(out)
    for fmt, path in (("voc", out / "voc"), ("coco_instances", out / "annotations")):
        ds = dm.Dataset.import_from(str(path), fmt)
        labels = ds.categories()[dm.AnnotationType.label]
        names = [labels[i].name for i in range(len(labels))]
        assert set(gen.spec.categories) <= set(names)
        boxes = [(item.id, names[a.label], a.get_bbox()) for item in ds if item.subset != "trainval"
                 for a in item.annotations if a.type == dm.AnnotationType.bbox]
        assert len(boxes) == sum(len(m["labels"]) for m in manifest), fmt
    # VOC boxes are 1-based and inclusive; datumaro reads them exactly in its voc-one-based mode
    # (its default takes xmin as a 0-based corner, one pixel off for every VOC dataset)
    voc = dm.Dataset.import_from(str(out / "voc"), "voc", coordinate_mode="voc-one-based")
    assert {s for s in voc.subsets()} >= {"train", "val"}
    by_id = {f"{m['index']:06d}": m for m in manifest}
    for item in voc:
        if item.subset == "trainval":
            continue
        m = by_id[item.id]
        got = sorted((labels_name(voc, a.label), tuple(round(v) for v in a.get_bbox())) for a in item.annotations)
        want = sorted((lab["category"], (int(lab["bbox"][0]), int(lab["bbox"][1]), int(np.ceil(lab["bbox"][2])) - int(lab["bbox"][0]),
                                         int(np.ceil(lab["bbox"][3])) - int(lab["bbox"][1]))) for lab in m["labels"])
        assert got == want, item.id


def labels_name(ds, i: int) -> str:
    import datumaro as dm

    return ds.categories()[dm.AnnotationType.label][i].name


@pytest.mark.readers
def test_ultralytics_label_scan_finds_no_corrupt_labels(compositor_run, tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo"))
    pytest.importorskip("ultralytics")
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.data.dataset import YOLODataset

    gen, out = compositor_run
    data = check_det_dataset(str(out / "data.yaml"))
    for split in ("train", "val"):
        ds = YOLODataset(img_path=data[split], data=data, task="detect", augment=False)
        labels = ds.get_labels()
        assert len(labels) == len([m for m in _manifest(out) if m["split"] == split])
        assert sum(len(x["cls"]) for x in labels) == sum(len(m["labels"]) for m in _manifest(out) if m["split"] == split)
    cache = list((out / "labels").glob("*.cache"))
    assert cache, "ultralytics wrote no label cache"
    for c in cache:  # ultralytics counts corrupt labels in the cache it writes
        stats = np.load(c, allow_pickle=True).item()
        assert stats["results"][3] == 0, stats["msgs"]  # nf, nm, ne, nc: nc = corrupt


def test_voc_xml_is_plain_and_valid(compositor_run):
    gen, out = compositor_run
    for x in (out / VOC / "Annotations").glob("*.xml"):
        root = ET.parse(x).getroot()
        assert root.find("folder").text == "VOC2012"


@pytest.mark.readers
@needs_gl()
def test_torchvision_imported_after_rendering(tmp_path):
    """torch's CUDA builds install triton, which carries its own LLVM; loaded after Mesa's
    software rasteriser has loaded the system's LLVM it crashed the process (a segmentation
    fault when torchvision was imported after one rendered sample). The renderer loads it first."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("triton") is None or importlib.util.find_spec("torchvision") is None:
        pytest.skip("needs torchvision and triton (the heavy install)")
    root = Path(__file__).resolve().parents[1]
    script = tmp_path / "order.py"
    script.write_text(
        "from synthgen import Generator\n"
        f"gen = Generator.from_yaml({str(root / 'scenes' / 'demo-renderer.yaml')!r}, overrides=['output.size=[160, 120]'])\n"
        "gen[0]\n"
        "import torchvision.datasets\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_a_voc_image_found_by_its_stem_may_have_brackets_in_its_name(compositor_run, tmp_path):
    """Where an annotation's <filename> is not in JPEGImages, the image is looked for by the
    annotation's stem; "shot[1]" was a glob character class and the image was not found."""
    import shutil

    from synthgen.datasets import open_dataset

    _, out = compositor_run
    voc = tmp_path / "voc"
    shutil.copytree(out / VOC, voc)
    stem = sorted(p.stem for p in (voc / "Annotations").glob("*.xml"))[0]
    img = next((voc / "JPEGImages").glob(f"{stem}.*"))
    img.rename(voc / "JPEGImages" / f"shot[1]{img.suffix}")
    xml = voc / "Annotations" / f"{stem}.xml"
    xml.write_text(xml.read_text().replace(f"<filename>{img.name}</filename>", "<filename>lost.jpg</filename>"))
    xml.rename(voc / "Annotations" / "shot[1].xml")
    for lst in (voc / "ImageSets" / "Main").glob("*.txt"):
        lst.write_text("".join(("shot[1]" if ln.split()[0] == stem else ln) + "\n" for ln in lst.read_text().splitlines()))
    items = {it.image_id: it for it in open_dataset(voc, "voc").items()}
    assert items["shot[1]"].path == voc / "JPEGImages" / f"shot[1]{img.suffix}"
