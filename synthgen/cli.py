"""The synthgen command line. Bad input prints one clear error line and exits 2."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import cv2
import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.markup import escape
from rich.text import Text

from .errors import SynthgenError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Synthetic training data with exact labels.")
err = Console(stderr=True)


class _Rate(ProgressColumn):
    def render(self, task) -> Text:  # type: ignore[override]
        images = task.fields.get("images", 0)
        elapsed = task.elapsed or 0
        rate = images / elapsed if elapsed > 0 else 0.0
        return Text(f"{images} images, {rate:.1f} images/s")


def _fail(e: Exception) -> None:
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _overrides(sets: list[str] | None, formats: str | None) -> list[str]:
    out = list(sets or [])
    if formats:
        out.append("output.formats=[" + ",".join(f.strip() for f in formats.split(",") if f.strip()) + "]")
    return out


@app.command()
def generate(
    spec: Annotated[Path, typer.Argument(help="Scene spec (YAML).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out"),
    n: Annotated[Optional[int], typer.Option("--n", help="Number of images.")] = None,
    per_class: Annotated[Optional[int], typer.Option("--per-class", help="Exactly this many labelled instances per class.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Override the spec's seed.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (spawned).")] = 1,
    formats: Annotated[Optional[str], typer.Option(help="Label formats, comma-separated: coco,yolo,voc.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a spec key: key.path=value (YAML value).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a previous run in --out.")] = False,
) -> None:
    """Generate a labelled dataset from SPEC into --out."""
    from .generator import Generator

    try:
        if (n is None) == (per_class is None):
            raise SynthgenError("give exactly one of --n N (images) or --per-class N (labelled instances per class)")
        gen = Generator.from_yaml(spec, seed=seed, overrides=_overrides(set_, formats))
        total = n if n is not None else per_class * len(gen.spec.categories)  # type: ignore[operator]
        unit = "images" if n is not None else "instances"
        t0 = time.perf_counter()
        with Progress(TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                      _Rate(), TimeRemainingColumn(), console=err, transient=False) as bar:
            task = bar.add_task("generate", total=total, images=0)

            def report(images: int, instances: int) -> None:
                bar.update(task, completed=images if n is not None else instances, images=images)

            summary = gen.generate(out, n=n, per_class=per_class, workers=workers, overwrite=overwrite, progress=report)
        dt = time.perf_counter() - t0
    except SynthgenError as e:
        _fail(e)
        return
    per = ", ".join(f"{c}: {k}" for c, k in summary["instances_per_class"].items())
    err.print(f"wrote {summary['images']} images to {out} in {dt:.1f} s ({summary['images'] / max(dt, 1e-9):.1f} images/s); instances {per}", highlight=False, soft_wrap=True)
    for c, entry in summary["targets"].items():
        for key, r in entry.items():
            lo, hi = r["target"]
            err.print(f"  {c} {key} [{lo:g}, {hi:g}]: {r['share_in_range']:.0%} of labelled instances in range, mean {r['mean']:.2f}",
                      highlight=False, soft_wrap=True)


@app.command()
def show(
    spec: Annotated[Path, typer.Argument(help="Scene spec (YAML).")],
    index: Annotated[list[int], typer.Option("--index", "-i", help="Sample index; repeat for a grid.")] = [0],  # noqa: B006
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("sample.png"),
    seed: Annotated[Optional[int], typer.Option(help="Override the spec's seed.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a spec key: key.path=value.")] = None,
    cols: Annotated[int, typer.Option(help="Grid columns when several indices are given.")] = 3,
    no_masks: Annotated[bool, typer.Option("--no-masks", help="Draw boxes only.")] = False,
    no_labels: Annotated[bool, typer.Option("--no-labels", help="The image alone, nothing drawn.")] = False,
    blend: Annotated[Optional[list[str]], typer.Option("--blend", help="Render the same scene with this blend mode; repeat for a grid.")] = None,
    depth: Annotated[bool, typer.Option("--depth", help="Renderer: put the depth map beside each sample.")] = False,
) -> None:
    """Render sample(s) with boxes, masks and class names drawn, to look at your data."""
    from .generator import Generator
    from .spec.models import BLEND_MODES
    from .inspect.draw import depth_image, draw_sample, grid

    try:
        for b in blend or []:
            if b not in BLEND_MODES:
                raise SynthgenError(f"--blend {b!r}: choose from {', '.join(BLEND_MODES)}")
        gen = Generator.from_yaml(spec, seed=seed, overrides=_overrides(set_, None))
        samples = [gen.sample(i, variant=b) for i in index for b in (blend or [None])]
        pictures = [s.image if no_labels else draw_sample(s, masks=not no_masks) for s in samples]
        if depth:
            if any(s.depth is None for s in samples):
                raise SynthgenError("--depth: this spec makes no depth (it needs kind: renderer)")
            pictures = [np.hstack([p, np.full((p.shape[0], 4, 3), 255, np.uint8), depth_image(s.depth)]) for p, s in zip(pictures, samples)]
    except SynthgenError as e:
        _fail(e)
        return
    picture = pictures[0] if len(pictures) == 1 else grid(pictures, min(cols, len(pictures)))
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        _fail(SynthgenError(f"could not write {out}"))
    err.print(f"wrote {out}", highlight=False)


@app.command()
def extract(
    coco_json: Annotated[Path, typer.Argument(help="COCO instances JSON of real, annotated photos.")],
    images_dir: Annotated[Path, typer.Argument(help="Folder the JSON's file_name entries are relative to.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bank folder to write.")] = Path("bank"),
    min_area: Annotated[int, typer.Option(help="Skip instances with fewer mask pixels.")] = 400,
    classes: Annotated[Optional[str], typer.Option(help="Only these classes, comma-separated.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Write into a non-empty --out.")] = False,
) -> None:
    """Cut every usable instance of a real COCO dataset into RGBA cutouts by class (a bank)."""
    from .compositor.bank import extract_bank

    try:
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise SynthgenError(f"--out {out} is not empty; pass --overwrite to add to it")
        wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
        index = extract_bank(coco_json, images_dir, out, min_area=min_area, classes=wanted)
    except SynthgenError as e:
        _fail(e)
        return
    per = ", ".join(f"{c}: {k}" for c, k in index["classes"].items()) or "none"
    skipped = ", ".join(f"{r}: {k}" for r, k in index["skipped"].items()) or "none"
    err.print(f"wrote {len(index['cutouts'])} cutouts to {out} ({per}); skipped {skipped}", highlight=False, soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
