"""Train a small detector on synthetic data only, then measure it where it has never been.

    pip install -e ".[trainers]"          # torch 2.14.1 + torchvision 0.29.1 (about 6 GB)
    python examples/train_detector.py     # about half an hour on a 2-core CPU

Training: torchvision's ``fasterrcnn_mobilenet_v3_large_320_fpn`` from scratch (no pretrained
weights, nothing downloaded), fed by ``synthgen.torch.SynthDataset`` with fresh samples every
epoch (examples/train.yaml: one view of each product, on two background photos).
Evaluation: COCO mAP with pycocotools, twice: on unseen samples of the training spec (another
seed: what the model learnt), and on a held-out set made by synthgen from the products' *other*
views on the *other* two background photos (examples/heldout.yaml: how far it carries), both
written to disk as COCO like any dataset. ``--real ANN_JSON IMAGES_DIR`` evaluates on a real COCO dataset instead
(its category names must be the spec's: cereal, rice).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def evaluate(model, ann_file: Path, image_dir: Path, classes: list[str]) -> tuple[float, float]:
    """(mAP@[.5:.95], AP50) of the model's boxes on a COCO file, by pycocotools."""
    import torch
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from synthgen.torch import CocoDataset

    data = CocoDataset(ann_file, image_dir, masks=False)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
    cat_id = {c["name"]: c["id"] for c in gt.dataset["categories"]}
    dets = []
    model.eval()
    with torch.no_grad():
        for i in range(len(data)):
            image, target = data[i]
            out = model([image.float() / 255.0])[0]
            for box, label, score in zip(out["boxes"].tolist(), out["labels"].tolist(), out["scores"].tolist()):
                name = classes[label - 1]
                if name in cat_id:
                    x0, y0, x1, y1 = box
                    dets.append({"image_id": target["image_id"], "category_id": cat_id[name], "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score})
    if not dets:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--length", type=int, default=128, help="synthetic samples per epoch (new ones every epoch)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--heldout", type=int, default=100, help="held-out images")
    ap.add_argument("--real", nargs=2, metavar=("ANN_JSON", "IMAGES_DIR"), help="evaluate on a real COCO dataset instead")
    args = ap.parse_args()

    import torch
    import torchvision

    from synthgen import Generator
    from synthgen.torch import DataLoader, SynthDataset

    torch.manual_seed(0)
    train = SynthDataset(HERE / "train.yaml", length=args.length, float_images=True)
    loader = DataLoader(train, batch_size=4, num_workers=args.workers, persistent_workers=args.workers > 0, shuffle=True)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=len(train.classes) + 1)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        train.set_epoch(epoch)  # new samples every epoch, also in persistent workers
        model.train()
        total = n = 0
        for images, targets in loader:
            loss = sum(model(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        sched.step()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / n:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        # the training distribution, samples never trained on (another seed): what the model learnt
        seen = Generator.from_yaml(HERE / "train.yaml", seed=10_000, overrides=["output.split={test: 1.0}", "output.formats=[coco]"])
        seen.generate(Path(tmp) / "same", n=args.heldout)
        results["same"] = evaluate(model, Path(tmp) / "same" / "annotations" / "instances_test.json",
                                   Path(tmp) / "same" / "images" / "test", train.classes)
        if args.real:
            ann, images, what = Path(args.real[0]), Path(args.real[1]), f"the real dataset {args.real[0]}"
        else:
            Generator.from_yaml(HERE / "heldout.yaml").generate(Path(tmp) / "heldout", n=args.heldout)
            ann, images = Path(tmp) / "heldout" / "annotations" / "instances_test.json", Path(tmp) / "heldout" / "images" / "test"
            what = f"{args.heldout} held-out images (other views, other backgrounds)"
        results["heldout"] = evaluate(model, ann, images, train.classes)
    print(f"after {args.epochs} epochs of {args.length} synthetic samples ({time.perf_counter() - t0:.0f} s):")
    print(f"  mAP@[.5:.95] {results['same'][0]:.3f}, AP50 {results['same'][1]:.3f} on {args.heldout} unseen samples of the training spec")
    print(f"  mAP@[.5:.95] {results['heldout'][0]:.3f}, AP50 {results['heldout'][1]:.3f} on {what}")
    json.dump({"epochs": args.epochs, "length": args.length, **{k: {"map": m, "ap50": a} for k, (m, a) in results.items()}}, sys.stderr)
    sys.stderr.write("\n")


if __name__ == "__main__":
    main()
