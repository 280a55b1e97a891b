"""The synthgen command line.

Bad input prints one ``error:`` line per problem, naming the file, key or flag, and exits 2;
Ctrl-C exits 130 with one line. No traceback reaches the user (``SYNTHGEN_DEBUG=1`` shows one
for an unexpected error, which exits 1).
"""

from __future__ import annotations

import functools
import os
import warnings
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from . import __version__
from .errors import SynthgenError, SynthgenWarning, counted, printable, problem_lines

# Plain help (no rich panels): flags show no "<bool>" type column.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Synthetic training data with exact labels.")
err = Console(stderr=True)


class _Rate(ProgressColumn):
    def render(self, task) -> Text:  # type: ignore[override]
        images = task.fields.get("images", 0)
        elapsed = task.elapsed or 0
        rate = images / elapsed if elapsed > 0 else 0.0
        return Text(f"{counted(images, 'image')}, {rate:.1f} images/s")


def _shown(bar: Progress) -> None:
    """Start a bar at the run's first step, not before: an error found by the checks before it is
    its one line, with no empty bar above it."""
    if not bar.live.is_started:
        bar.start()


def _gone(bar: Progress) -> None:
    """Take a transient bar away. Not ``Progress.stop``: where stderr is no terminal it prints an
    empty line, which stood above a report's warnings and a merge's summary."""
    if bar.live.is_started:
        bar.live.stop()


def _say(line: str) -> None:
    err.print(printable(line), highlight=False, soft_wrap=True, markup=False)


def _fail(e: BaseException, code: int = 2) -> None:
    for line in problem_lines(str(e)) or [type(e).__name__]:
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _guarded(fn: Callable) -> Callable:
    """One clear line for every way a command can fail; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .runs.run import Interrupted

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except Interrupted as e:
            _fail(e, e.code)
        except SynthgenError as e:
            _fail(e)
        except KeyboardInterrupt:
            _fail(SynthgenError("interrupted"), 130)
        except Exception as e:  # noqa: BLE001 - the last line of defence against a traceback
            if os.environ.get("SYNTHGEN_DEBUG"):
                raise
            _fail(SynthgenError(f"unexpected {type(e).__name__}: {e} (a bug in synthgen: please report it; "
                                "SYNTHGEN_DEBUG=1 shows the traceback)"), 1)

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"synthgen {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Synthetic training data with exact labels."""


def _formats(formats: str | None) -> list[tuple[str, Any, str]]:
    """--formats as a spec override that names the flag in errors."""
    if formats is None:
        return []
    names = [f.strip() for f in formats.split(",") if f.strip()]
    if not names:
        raise SynthgenError("--formats: give one or more of coco, yolo, voc, bop, webdataset, comma-separated")
    return [("output.formats", names, f"--formats {formats}")]


def _load(spec: Path, seed: int | None, sets: list[str] | None, formats: str | None = None, shard_size: int | None = None):
    from .generator import Generator

    if seed is not None and seed < 0:
        raise SynthgenError(f"--seed must be >= 0, got {seed}")
    extra: list[Any] = _formats(formats)
    if shard_size is not None:
        extra.append(("output.shard_size", shard_size, f"--shard-size {shard_size}"))
    return Generator.from_yaml(spec, seed=seed, overrides=[*(sets or []), *extra])


SpecArg = Annotated[Path, typer.Argument(metavar="SPEC", help="Scene spec (YAML).", show_default=False)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", metavar="S", help="Override the spec's seed.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Override a spec key: key.path=value (YAML value); repeat.")]


@app.command()
@_guarded
def generate(
    spec: SpecArg,
    out: Annotated[str, typer.Option("--out", "-o", metavar="DIR", help="Output folder.")] = "out",
    n: Annotated[Optional[int], typer.Option("--n", metavar="N", help="Number of images.")] = None,
    per_class: Annotated[Optional[int], typer.Option("--per-class", metavar="N", help="Exactly this many labelled instances per class.")] = None,
    seed: SeedOpt = None,
    workers: Annotated[int, typer.Option("--workers", metavar="W", help="Worker processes (spawned).")] = 1,
    formats: Annotated[Optional[str], typer.Option("--formats", metavar="LIST", help="Label formats, comma-separated: coco,yolo,voc,bop,webdataset.")] = None,
    shard_size: Annotated[Optional[int], typer.Option("--shard-size", metavar="N", help="webdataset: images per tar (default 1000).")] = None,
    set_: SetOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous run in --out (deletes only files runs recorded writing).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Finish an interrupted run in --out (or start one in an empty --out).")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", metavar="K/N", help="Make shard K of N (from 0) of the dataset; synthgen merge joins the shards.")] = None,
    backend: Annotated[str, typer.Option("--backend", metavar="B", help="Where samples are made: local (processes) or ray (Ray actors).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", metavar="ADDR", help="--backend ray: a running Ray cluster (default: start one here).")] = None,
) -> None:
    """Generate a labelled dataset from SPEC into --out."""
    if (n is None) == (per_class is None):
        raise SynthgenError("give exactly one of --n N (images) or --per-class N (labelled instances per class)")
    flag, count = ("--n", n) if n is not None else ("--per-class", per_class)
    if count < 0:  # type: ignore[operator]
        raise SynthgenError(f"{flag} must be >= 0, got {count}")
    if count == 0:
        raise SynthgenError(f"{flag} 0: there is nothing to write")
    if workers < 1:
        raise SynthgenError(f"--workers must be at least 1, got {workers}")
    if out == "":
        raise SynthgenError("--out is empty: name an output folder (an empty name would be the current folder)")
    if overwrite and resume:
        raise SynthgenError("--overwrite and --resume contradict each other: give one")
    from .runs.run import parse_shard, shard_range
    from .runs.scheduler import PerClassSchedule

    part = parse_shard(shard, n, per_class)
    sets = list(set_ or [])
    gen = _load(spec, seed, sets, formats, shard_size)
    gen.check()  # before the progress bar: every problem with the inputs, nothing written
    if n is not None:
        lo, hi = shard_range(n, part)
        total = hi - lo
    else:
        sched = PerClassSchedule(gen.spec, gen.seed, per_class)  # type: ignore[arg-type]
        lo, hi = shard_range(sched.count, part)
        total = sum(sched.quota(b) for b in range(lo, hi)) * len(gen.spec.categories)
    unit = "images" if n is not None else "instances"
    t0 = time.perf_counter()
    # shown from the run's start, once --out and an interrupted run's parts are checked too: an
    # error found before then is its one line, with no empty bar above it
    bar = Progress(TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                   _Rate(), TimeRemainingColumn(), console=err, transient=False)
    task = bar.add_task("generate", total=total, images=0)

    def report(images: int, instances: int) -> None:
        _shown(bar)
        bar.update(task, completed=images if n is not None else instances, images=images)

    try:
        summary = gen.generate(Path(out), n=n, per_class=per_class, workers=workers, overwrite=overwrite,
                               resume=resume, progress=report, shard=part, backend=backend, ray_address=ray_address)
    finally:
        if bar.live.is_started:
            bar.stop()
    dt = time.perf_counter() - t0
    per = ", ".join(f"{c}: {k}" for c, k in summary["instances_per_class"].items())
    _say(f"wrote {counted(summary['images'], 'image')} to {out} in {dt:.1f} s ({summary['images'] / max(dt, 1e-9):.1f} images/s); instances {per}")
    if part is not None:
        _say(f"this is shard {part[0]}/{part[1]}: when all {part[1]} are made, join them with synthgen merge SHARD... --out DIR")
    if not any(summary["instances_per_class"].values()):
        _say("warning: no object was labelled: every object fell below min_visibility or min_area "
             "(lower them, or raise placement.scale_range)")
    for c, r in summary["placement"].items():
        if r["placed"] < r["requested"]:
            _say(f"  {c}: {r['placed']} of {r['requested']} requested objects placed ({r['requested'] - r['placed']} found no free spot)")
        if r.get("upscale_capped"):
            _say(f"  {c}: max_upscale capped the size of {r['upscale_capped']} of {r['placed']} objects (small cutouts)")
    for c, entry in summary["targets"].items():
        for key, r in entry.items():
            lo, hi = r["target"]
            _say(f"  {c} {key} [{lo:g}, {hi:g}]: {r['share_in_range']:.0%} of labelled instances in range, mean {r['mean']:.2f}")


@app.command()
@_guarded
def check(
    spec: SpecArg,
    seed: SeedOpt = None,
    set_: SetOpt = None,
) -> None:
    """Check SPEC and every asset it names (decoded in full); print every problem, write nothing."""
    gen = _load(spec, seed, set_)
    gen.check()
    lib = gen.library
    files = len(lib.input_files())
    k = len(gen.spec.categories)
    _say(f"ok: {spec} ({gen.spec.kind}, {counted(k, 'class')}, {counted(files, 'input file')} checked)")


@app.command()
@_guarded
def show(
    target: Annotated[Path, typer.Argument(metavar="SPEC|DATASET", help="A scene spec (YAML), or a dataset on disk: a folder "
                                           "(synthgen output, COCO, YOLO or VOC), a COCO .json or a YOLO data.yaml.", show_default=False)],
    index: Annotated[list[int], typer.Option("--index", "-i", metavar="I", help="Sample index (spec) or image id / position (dataset); repeat for a grid.")] = [0],  # noqa: B006
    out: Annotated[Path, typer.Option("--out", "-o", metavar="PNG", help="PNG to write.")] = Path("sample.png"),
    seed: SeedOpt = None,
    set_: SetOpt = None,
    cols: Annotated[int, typer.Option("--cols", metavar="C", help="Grid columns when several indices are given.")] = 3,
    no_masks: Annotated[bool, typer.Option("--no-masks", help="Draw boxes only.")] = False,
    no_labels: Annotated[bool, typer.Option("--no-labels", help="The image alone, nothing drawn.")] = False,
    blend: Annotated[Optional[list[str]], typer.Option("--blend", metavar="MODE", help="Spec: render the same scene with this blend mode; repeat for a grid.")] = None,
    depth: Annotated[bool, typer.Option("--depth", help="Renderer: put the depth map beside each sample.")] = False,
    format: Annotated[Optional[str], typer.Option("--format", metavar="FMT", help="Dataset: coco, yolo or voc (found by itself otherwise).")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", metavar="DIR", help="Dataset: the folder of a COCO file's images, when not beside it.")] = None,
) -> None:
    """Draw samples of a spec, or images of a dataset on disk, with boxes, masks, class names,
    visibility and truncation (and the renderer's depth and projected 3D boxes)."""
    import numpy as np

    from .inspect.draw import depth_image, draw_sample, grid
    from .spec.models import BLEND_MODES

    if cols < 1:
        raise SynthgenError(f"--cols must be at least 1, got {cols}")
    if not _is_spec(target):
        if blend or seed is not None or set_:
            raise SynthgenError("--blend, --seed and --set are for a spec; this is a dataset on disk")
        pictures = _show_dataset(target, index, format, images, no_masks, no_labels, depth)
    else:
        bad = [i for i in index if i < 0]
        if bad:
            raise SynthgenError(f"--index must be >= 0, got {bad[0]}")
        for b in blend or []:
            if b not in BLEND_MODES:
                raise SynthgenError(f"--blend {b!r}: choose from {', '.join(BLEND_MODES)}")
        gen = _load(target, seed, set_)
        samples = [gen.sample(i, variant=b) for i in index for b in (blend or [None])]
        pictures = [s.image if no_labels else draw_sample(s, masks=not no_masks) for s in samples]
        if depth:
            if any(s.depth is None for s in samples):
                raise SynthgenError("--depth: this spec makes no depth (it needs kind: renderer)")
            pictures = [np.hstack([p, np.full((p.shape[0], 4, 3), 255, np.uint8), depth_image(s.depth)]) for p, s in zip(pictures, samples)]
    if len({p.shape for p in pictures}) > 1:  # images of a dataset may differ in size: pad to the largest
        h = max(p.shape[0] for p in pictures)
        w = max(p.shape[1] for p in pictures)
        pictures = [np.pad(p, ((0, h - p.shape[0]), (0, w - p.shape[1]), (0, 0)), constant_values=255) for p in pictures]
    picture = pictures[0] if len(pictures) == 1 else grid(pictures, min(cols, len(pictures)))
    _write_png(out, picture)


def _is_spec(target: Path) -> bool:
    """A scene spec is YAML with classes; a dataset is a folder, a COCO .json or a YOLO data.yaml."""
    import yaml

    if target.is_dir() or target.suffix.lower() == ".json":
        return False
    if target.suffix.lower() in (".yaml", ".yml") and target.is_file():
        try:
            head = yaml.safe_load(target.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
            return True  # the spec loader says what is wrong with it
        return not (isinstance(head, dict) and "names" in head and "classes" not in head)
    return True


def _show_dataset(target: Path, index: list[int], format: str | None, images: Path | None, no_masks: bool,
                  no_labels: bool, depth: bool) -> list:
    import numpy as np

    from .datasets import open_dataset
    from .inspect.draw import depth_image, draw_item
    from .sources import read_image

    ds = open_dataset(target, format, images)
    pictures = []
    for i in index:
        item = ds.find(i)
        pic = read_image(item.path, "RGB") if no_labels else draw_item(item, ds.categories, masks=not no_masks)
        if depth:
            d = ds.root / "depth" / item.split / f"{item.path.stem}.png"
            if not d.is_file():
                raise SynthgenError(f"--depth: no depth map {d} (synthgen's renderer writes OUT/depth/<split>/<id>.png)")
            import cv2

            mm = cv2.imread(str(d), cv2.IMREAD_UNCHANGED)
            if mm is None or mm.ndim != 2:
                raise SynthgenError(f"--depth: {d} is not a depth map (a one-channel PNG of millimetres)")
            pic = np.hstack([pic, np.full((pic.shape[0], 4, 3), 255, np.uint8), depth_image(mm.astype(np.float32) / 1000.0)])
        pictures.append(pic)
    return pictures


@app.command()
@_guarded
def report(
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="A folder (synthgen output, COCO, YOLO or VOC), a COCO .json or a YOLO data.yaml.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="HTML", help="The report to write.")] = Path("report.html"),
    real: Annotated[Optional[Path], typer.Option("--real", metavar="REAL", help="A real dataset to compare with (any format).")] = None,
    format: Annotated[Optional[str], typer.Option("--format", metavar="FMT", help="coco, yolo or voc (found by itself otherwise).")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", metavar="DIR", help="The folder of a COCO file's images, when not beside it.")] = None,
    real_format: Annotated[Optional[str], typer.Option("--real-format", metavar="FMT", help="The real dataset's format.")] = None,
    real_images: Annotated[Optional[Path], typer.Option("--real-images", metavar="DIR", help="The real COCO file's image folder.")] = None,
    gallery: Annotated[int, typer.Option("--gallery", metavar="N", help="Images in the gallery.")] = 48,
) -> None:
    """One self-contained HTML report on a dataset: a gallery with labels drawn, class balance,
    sizes, aspects, positions, visibility, the assets synthgen used, a bias audit, and with
    --real where the dataset differs most from a real one."""
    from .inspect.report import build_report

    if gallery < 0:
        raise SynthgenError(f"--gallery must be >= 0, got {gallery}")
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=err, transient=True)
    tasks: dict[str, Any] = {}

    def tick(what: str, done: int, total: int) -> None:
        _shown(bar)  # from the first step read
        if what not in tasks:
            tasks[what] = bar.add_task(what, total=total)
        bar.update(tasks[what], completed=done)

    try:
        summary = build_report(dataset, out, real, format, images, real_format, real_images, gallery, tick)
    finally:
        _gone(bar)
    for w in summary["warnings"]:
        _say(f"warning: {w}")
    _say(f"wrote {out}: {counted(summary['images'], 'image')}, {counted(summary['instances'], 'instance')}, {counted(len(summary['classes']), 'class')}")


@app.command()
@_guarded
def validate(
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="A folder (COCO, YOLO or VOC), a COCO .json or a YOLO data.yaml.", show_default=False)],
    format: Annotated[Optional[str], typer.Option("--format", metavar="FMT", help="coco, yolo or voc (found by itself otherwise).")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", metavar="DIR", help="The folder of a COCO file's images, when not beside it.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    no_duplicates: Annotated[bool, typer.Option("--no-duplicates", help="Skip the near-duplicate search across splits.")] = False,
) -> None:
    """Check a COCO, YOLO or Pascal VOC dataset for what loaders let through: boxes outside the
    image, masks that disagree with their box or area, missing, duplicated or orphaned ids,
    wrong image sizes, missing images, malformed label lines, and near-duplicate images across
    splits. Exit 0 when clean, 1 with a line per problem otherwise."""
    import json as json_mod

    from .inspect.validate import validate as run

    report = run(dataset, format, images, duplicates=not no_duplicates)
    if json_:
        typer.echo(json_mod.dumps(report.to_json(), indent=1))
    else:
        for p in report.problems:
            typer.echo(printable(p.line()))
        kinds: dict[str, int] = {}
        for p in report.problems:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        summary = ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
        _say(f"{report.format.upper()} {dataset}: {counted(report.images, 'image')}, {counted(report.annotations, 'annotation')}, "
             + (f"{counted(len(report.problems), 'problem')} ({summary})" if report.problems else "no problems"))
    if report.problems:
        raise typer.Exit(1)


def _write_png(out: Path, picture) -> None:
    import cv2

    from .inspect.output import check_output, marked_png, write_output

    path = check_output(out, "png")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    write_output(path, marked_png(buf.tobytes()))
    _say(f"wrote {out}")


@app.command()
@_guarded
def merge(
    shards: Annotated[list[Path], typer.Argument(metavar="SHARD...", help="The shard folders (generate --shard K/N), all of one run.", show_default=False)],
    out: Annotated[str, typer.Option("--out", "-o", metavar="DIR", help="The merged dataset's folder.")] = "out",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous run in --out (deletes only files runs recorded writing).")] = False,
) -> None:
    """Join the shards of a run into one dataset, byte-identical to the run made unsharded."""
    from .runs.merge import check_shards
    from .runs.merge import merge as merge_shards

    if out == "":
        raise SynthgenError("--out is empty: name an output folder (an empty name would be the current folder)")
    check_shards(shards)  # before the progress display: one clear line for shards that do not belong together
    t0 = time.perf_counter()
    # shown once --out and the shards' parts are checked: an error found before is its one line
    bar = Progress(TextColumn("[bold]merging"), _Rate(), console=err, transient=True)
    task = bar.add_task("merge", total=None, images=0)

    def report(images: int, _: int) -> None:
        _shown(bar)
        bar.update(task, images=images)

    try:
        summary = merge_shards(shards, Path(out), overwrite=overwrite, progress=report)
    finally:
        _gone(bar)
    per = ", ".join(f"{c}: {k}" for c, k in summary["instances_per_class"].items())
    _say(f"merged {counted(len(shards), 'shard')} into {out}: {counted(summary['images'], 'image')} in {time.perf_counter() - t0:.1f} s; instances {per}")


@app.command()
@_guarded
def extract(
    coco_json: Annotated[Path, typer.Argument(metavar="COCO_JSON", help="COCO instances JSON of real, annotated photos.", show_default=False)],
    images_dir: Annotated[Path, typer.Argument(metavar="IMAGES_DIR", help="Folder the JSON's file_name entries are relative to.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="BANK", help="Bank folder to write.")] = Path("bank"),
    min_area: Annotated[int, typer.Option("--min-area", metavar="A", help="Skip instances with fewer mask pixels.")] = 400,
    classes: Annotated[Optional[str], typer.Option("--classes", metavar="LIST", help="Only these classes, comma-separated.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a non-empty --out.")] = False,
) -> None:
    """Cut every usable instance of a real COCO dataset into RGBA cutouts by class (a bank)."""
    from .compositor.bank import extract_bank

    if out.exists() and not out.is_dir():
        raise SynthgenError(f"--out {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise SynthgenError(f"--out {out} is not empty; pass --overwrite to add to it")
    wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    index = extract_bank(coco_json, images_dir, out, min_area=min_area, classes=wanted)
    per = ", ".join(f"{c}: {k}" for c, k in index["classes"].items()) or "none"
    skipped = ", ".join(f"{r}: {k}" for r, k in index["skipped"].items()) or "none"
    _say(f"wrote {counted(len(index['cutouts']), 'cutout')} to {out} ({per}); skipped {skipped}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, SynthgenWarning):
        _say(f"warning: {message}")
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main() -> None:
    warnings.showwarning = _show_warning
    app()


if __name__ == "__main__":
    main()
