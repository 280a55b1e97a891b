"""Real trainers consuming synthgen: torchvision's detectors from SynthDataset in a DataLoader with
workers, torchvision v2 transforms against the labels, ultralytics YOLO on synthgen's YOLO
output. The heavy tier: ``pip install -e ".[trainers]"`` (torch 2.14.1, torchvision 0.29.1,
ultralytics, datumaro; about 6 GB), then ``python -m pytest -m "trainers or readers"``. Skipped
without it. No weights are downloaded: models start from scratch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import base_spec, needs_gl, write_spec

pytestmark = pytest.mark.trainers


@pytest.fixture
def torchvision():
    tv = pytest.importorskip("torchvision")
    return tv


def test_faster_rcnn_learns_from_synthdataset_with_two_workers(torchvision, assets, tmp_path):
    """fasterrcnn_mobilenet_v3_large_320_fpn, no pretrained weights, trained for a few dozen steps
    on 8 samples through a 2-worker DataLoader: the loss goes down."""
    raw = base_spec(assets)
    raw["objects_per_image"] = [1, 3]
    spec = write_spec(tmp_path / "s.yaml", raw)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import torch, torchvision
        from synthgen.torch import SynthDataset, DataLoader

        if __name__ == "__main__":
            torch.manual_seed(0)
            ds = SynthDataset({str(spec)!r}, length=8, float_images=True)
            loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
            model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
                weights=None, weights_backbone=None, num_classes=len(ds.classes) + 1)
            opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
            model.train()
            losses = []
            for epoch in range(12):  # the same 8 samples every epoch: it must fit them
                for images, targets in loader:
                    loss = sum(model(images, targets).values())
                    opt.zero_grad(); loss.backward(); opt.step()
                    losses.append(float(loss))
            print("first", sum(losses[:4]) / 4, "last", sum(losses[-4:]) / 4)
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    words = r.stdout.split()
    first, last = float(words[words.index("first") + 1]), float(words[words.index("last") + 1])
    assert last < 0.7 * first, r.stdout


def test_torchvision_v2_flip_and_crop_keep_labels_together(torchvision, assets):
    import torch
    from torchvision.transforms import v2

    from synthgen.spec import spec_from_dict
    from synthgen.torch import SynthDataset

    raw = base_spec(assets)
    raw["objects_per_image"] = [1, 4]
    spec = spec_from_dict(raw)
    t = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.RandomCrop((64, 96))])
    plain, moved = SynthDataset(spec, length=12), SynthDataset(spec, length=12, transforms=t)
    torch.manual_seed(0)
    n = 0
    for i in range(12):
        img, tg = moved[i]
        assert img.shape == (3, 64, 96) and tg["boxes"].canvas_size == (64, 96)
        for box, m in zip(tg["boxes"], tg["masks"]):
            ys, xs = torch.nonzero(m, as_tuple=True)
            assert box.tolist() == [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
            n += 1
        assert set(tg["labels"].tolist()) <= set(plain[i][1]["labels"].tolist())
    assert n > 5


def test_batches_from_workers_keep_torchvisions_tensor_types(torchvision, assets):
    """Batches that workers write into shared memory (synthgen's DataLoader) come back as
    tv_tensors with their metadata: Image, BoundingBoxes (XYXY, canvas size), Mask."""
    import torch
    from torchvision import tv_tensors

    from synthgen.spec import spec_from_dict
    from synthgen.torch import DataLoader, SynthDataset

    raw = base_spec(assets)
    raw["objects_per_image"] = [1, 3]
    ds = SynthDataset(spec_from_dict(raw), length=12)
    for b, (images, targets) in enumerate(DataLoader(ds, batch_size=3, num_workers=2)):
        for k, (img, t) in enumerate(zip(images, targets)):
            want_img, want = ds[3 * b + k]
            assert type(img) is tv_tensors.Image and torch.equal(img, want_img)
            assert type(t["boxes"]) is tv_tensors.BoundingBoxes and t["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY
            assert t["boxes"].canvas_size == want["boxes"].canvas_size and torch.equal(t["boxes"], want["boxes"])
            assert type(t["masks"]) is tv_tensors.Mask and torch.equal(t["masks"], want["masks"])


@needs_gl()
def test_torchvision_v2_moves_renderer_keypoints_with_the_image(torchvision, shared):
    import torch
    from torchvision.transforms import v2

    from synthgen.spec import spec_from_dict
    from synthgen.torch import SynthDataset

    from .test_renderer import _spec

    spec = spec_from_dict(_spec(shared, output={"size": [160, 120], "formats": ["coco"]}))
    plain = SynthDataset(spec, length=3, keypoints=True)
    flipped = SynthDataset(spec, length=3, keypoints=True, transforms=v2.RandomHorizontalFlip(p=1.0))
    for i in range(3):
        _, a = plain[i]
        _, b = flipped[i]
        # a point at x (pixel centres at whole numbers, as synthgen's K has them) lands on 159 - x;
        # a box edge at x on 160 - x
        assert torch.allclose(b["keypoints"][..., 0], 159 - a["keypoints"][..., 0], atol=1e-4)
        assert torch.equal(b["keypoints"][..., 2], a["keypoints"][..., 2])


def test_ultralytics_trains_one_epoch_on_synthgen_yolo_with_no_corrupt_label(assets, tmp_path):
    pytest.importorskip("ultralytics")
    raw = base_spec(assets)
    raw["output"].update(formats=["yolo"], split={"train": 0.8, "val": 0.2})
    spec = write_spec(tmp_path / "s.yaml", raw)
    out = tmp_path / "data"
    r = subprocess.run([sys.executable, "-m", "synthgen.cli", "generate", str(spec), "--n", "40", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    script = tmp_path / "yolo.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np
        from pathlib import Path
        from ultralytics import YOLO

        if __name__ == "__main__":
            model = YOLO("yolov8n.yaml")  # from scratch: no weights to download
            model.train(data={str(out / "data.yaml")!r}, epochs=1, imgsz=128, batch=8, workers=0, device="cpu",
                        pretrained=False, amp=False, plots=False, project={str(tmp_path / "runs")!r}, name="t", verbose=False)
            for cache in sorted(Path({str(out / "labels")!r}).glob("*.cache")):
                nf, nm, ne, nc, n = np.load(cache, allow_pickle=True).item()["results"]
                print(cache.name, "found", nf, "missing", nm, "empty", ne, "corrupt", nc)
    """))
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "yolo"), "YOLO_OFFLINE": "1"}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=1200, env=env, cwd=tmp_path)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    lines = [ln for ln in r.stdout.splitlines() if " corrupt " in ln]
    assert len(lines) == 2 and all(ln.endswith("corrupt 0") for ln in lines), r.stdout[-2000:]
    assert sum(int(ln.split("found ")[1].split()[0]) for ln in lines) == 40
