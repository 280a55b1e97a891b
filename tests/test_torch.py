"""synthgen.torch in a training loop: on torch 2.13 (CPU) without torchvision, as CI has it.
torchvision's own transforms and detectors are in the ``trainers`` tier (test_trainers.py)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthgen import Generator, SynthgenError  # noqa: E402
from synthgen.spec import spec_from_dict  # noqa: E402
from synthgen.torch import DataLoader, MixedDataset, SynthDataset, SynthIterableDataset, collate  # noqa: E402

from .conftest import base_spec, needs_gl, write_spec  # noqa: E402


@pytest.fixture(scope="module")
def spec(assets):
    raw = base_spec(assets)
    raw["objects_per_image"] = [0, 4]
    return spec_from_dict(raw)


def test_item_i_is_sample_epoch_times_length_plus_i(spec):
    gen = Generator(spec)
    ds = SynthDataset(spec, length=10)
    img, t = ds[3]
    np.testing.assert_array_equal(img.permute(1, 2, 0).numpy(), gen[3].image)
    ds.set_epoch(2)
    img, t = ds[3]
    assert t["image_id"] == 23
    np.testing.assert_array_equal(img.permute(1, 2, 0).numpy(), gen[23].image)
    s = gen[23]
    np.testing.assert_array_equal(t["boxes"].numpy(), s.boxes)
    np.testing.assert_array_equal(t["labels"].numpy(), s.labels + 1)  # 1-based: 0 is the background
    np.testing.assert_array_equal(t["masks"].numpy().astype(bool), s.masks)
    assert t["area"].tolist() == [float(a.area) for a in s.annotations]
    assert SynthDataset(spec, length=10, epoch=2)[3][1]["image_id"] == 23


def test_targets_have_torchvisions_shapes_even_with_no_object(spec):
    ds = SynthDataset(spec, length=40)
    seen_empty = seen_full = False
    for i in range(40):
        img, t = ds[i]
        n = len(t["labels"])
        assert img.dtype == torch.uint8 and img.shape == (3, 96, 128)
        assert t["boxes"].shape == (n, 4) and t["boxes"].dtype == torch.float32
        assert t["labels"].dtype == torch.int64 and t["masks"].shape == (n, 96, 128) and t["masks"].dtype == torch.uint8
        assert t["area"].shape == (n,) and t["iscrowd"].shape == (n,) and t["iscrowd"].dtype == torch.int64
        seen_empty |= n == 0
        seen_full |= n > 0
    assert seen_empty and seen_full
    img, _ = SynthDataset(spec, length=2, float_images=True)[0]
    assert img.dtype == torch.float32 and 0 <= float(img.min()) and float(img.max()) <= 1


def test_dataloader_with_workers_gives_the_same_batches(spec):
    ds = SynthDataset(spec, length=16)
    a = list(DataLoader(ds, batch_size=4, num_workers=0))
    b = list(DataLoader(ds, batch_size=4, num_workers=2))
    assert len(a) == len(b) == 4
    for (ia, ta), (ib, tb) in zip(a, b):
        assert isinstance(ia, list) and isinstance(ta, list) and len(ia) == 4
        for x, y in zip(ia, ib):
            assert torch.equal(x, y)
        for x, y in zip(ta, tb):
            assert torch.equal(x["boxes"], y["boxes"]) and x["image_id"] == y["image_id"]
    # persistent workers keep their copy of the dataset (and its backend) from epoch to epoch,
    # and still see every epoch's new samples
    loader = DataLoader(ds, batch_size=8, num_workers=2, persistent_workers=True)
    for epoch in range(3):
        ds.set_epoch(epoch)
        assert [t["image_id"] for _, ts in loader for t in ts] == list(range(16 * epoch, 16 * epoch + 16))
    import pickle

    assert pickle.loads(pickle.dumps(ds)).epoch == 2  # a plain pickle keeps the epoch as a number


@pytest.mark.parametrize("workers,ranks", [(0, 1), (2, 1), (2, 2), (3, 2)])
def test_the_stream_splits_across_workers_and_ranks_with_no_duplicates_or_gaps(spec, workers, ranks):
    seen = []
    for rank in range(ranks):
        ds = SynthIterableDataset(spec, length=23, rank=rank, world_size=ranks, masks=False)
        got = [t["image_id"] for _, ts in DataLoader(ds, batch_size=5, num_workers=workers) for t in ts]
        assert len(got) == len(ds) or ranks == 1
        seen += got
    assert sorted(seen) == list(range(23))
    ds = SynthIterableDataset(spec, length=23, epoch=3, masks=False)
    assert [t["image_id"] for _, ts in DataLoader(ds, batch_size=8) for t in ts] == list(range(69, 92))
    persistent = DataLoader(ds, batch_size=8, num_workers=2, persistent_workers=True)
    for epoch in (4, 5):
        ds.set_epoch(epoch)
        assert sorted(t["image_id"] for _, ts in persistent for t in ts) == list(range(23 * epoch, 23 * epoch + 23))


def test_an_endless_stream_keeps_going(spec):
    it = iter(SynthIterableDataset(spec, masks=False))
    ids = [next(it)[1]["image_id"] for _ in range(30)]
    assert ids == list(range(30))


def test_albumentations_flip_and_crop_keep_boxes_masks_and_labels_together(spec):
    import albumentations as A

    t = A.Compose([A.HorizontalFlip(p=1.0), A.RandomCrop(64, 96, p=1.0)], seed=0,
                  bbox_params=A.BboxParams(format="pascal_voc", label_fields=["ids"], min_visibility=0.0))
    plain = SynthDataset(spec, length=20)
    moved = SynthDataset(spec, length=20, transforms=t)
    checked = 0
    for i in range(20):
        img, tg = moved[i]
        _, orig = plain[i]
        assert img.shape == (3, 64, 96)
        n = len(tg["labels"])
        assert tg["boxes"].shape == (n, 4) and tg["masks"].shape == (n, 64, 96)
        for box, m in zip(tg["boxes"], tg["masks"]):
            ys, xs = torch.nonzero(m, as_tuple=True)
            assert box.tolist() == [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        assert set(tg["labels"].tolist()) <= set(orig["labels"].tolist())
        assert tg["area"].tolist() == [float(m.sum()) for m in tg["masks"]]
        checked += n
    assert checked > 5
    # the flip alone: every box mirrored, the same labels
    flip = SynthDataset(spec, length=20, transforms=A.Compose([A.HorizontalFlip(p=1.0)], seed=0))
    for i in range(5):
        _, a = plain[i]
        _, b = flip[i]
        assert a["labels"].tolist() == b["labels"].tolist()
        mirrored = torch.stack([128 - a["boxes"][:, 2], a["boxes"][:, 1], 128 - a["boxes"][:, 0], a["boxes"][:, 3]], 1)
        assert torch.equal(b["boxes"], mirrored)


def _draws(image, target):
    """A transform of your own that draws from torch, Python's random and numpy's global state:
    a flip (image and masks) and a brightness shift."""
    import random

    flip = bool(torch.rand(()) < 0.5)
    shift = random.randrange(40) + int(np.random.randint(40))
    image = (image.flip(-1) if flip else image).int().add(shift).clamp(0, 255).to(torch.uint8)
    target["masks"] = target["masks"].flip(-1) if flip else target["masks"]
    return image, target


def _albumentations_draws():
    import albumentations as A

    return A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.5)],
                     bbox_params=A.BboxParams(format="pascal_voc", label_fields=["ids"], min_visibility=0.0))


@pytest.mark.parametrize("kind", ["own function", "albumentations"])
def test_a_transform_draws_the_same_for_a_sample_in_any_order_and_from_any_worker(spec, kind):
    """Item i with a random transform is a function of (seed, epoch, i): the same read forwards
    or backwards, with 0 or 2 workers (balanced or in turn), and a new draw every item and epoch;
    the caller's own random state is left as it was."""
    import random

    make = (lambda: _draws) if kind == "own function" else _albumentations_draws
    ds = SynthDataset(spec, length=12, transforms=make())
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    before = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    forwards = [ds[i] for i in range(12)]
    backwards = [ds[i] for i in reversed(range(12))][::-1]
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])
    again = SynthDataset(spec, length=12, transforms=make())  # a new transform object, the same draws
    plain = SynthDataset(spec, length=12)
    drawn = set()  # whether each item was flipped (own function) or left as it was (albumentations)
    for i, ((a, ta), (b, tb)) in enumerate(zip(forwards, backwards)):
        c, tc = again[i]
        assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["boxes"], tc["boxes"])
        p, tp = plain[i]
        if kind == "albumentations":
            drawn.add(torch.equal(a, p))
        elif len(tp["masks"]):
            drawn.add(torch.equal(ta["masks"], tp["masks"].flip(-1)))
    assert drawn == {True, False}  # a draw of its own for every item, not one for all
    for balance in (True, False):
        loaded = [(im, t) for images, targets in DataLoader(ds, batch_size=3, num_workers=2, balance=balance)
                  for im, t in zip(images, targets)]
        for (a, ta), (b, tb) in zip(forwards, loaded):
            assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"]), balance
    ds.set_epoch(1)
    assert any(not torch.equal(ds[i][0], forwards[i][0]) for i in range(12))


def test_mixed_dataset_has_the_share_of_real_images_in_every_batch(spec, assets, tmp_path):
    real_raw = base_spec(assets)
    real_raw["classes"] = {k: real_raw["classes"][k] for k in ("bar", "ring")}  # other order, fewer classes
    real_raw["output"]["formats"] = ["coco"]
    real_raw["output"]["split"] = {"train": 1.0}
    Generator(spec_from_dict(real_raw)).generate(tmp_path / "real", n=10)
    real = (tmp_path / "real" / "annotations" / "instances_train.json", tmp_path / "real" / "images" / "train")
    from synthgen.torch import CocoDataset

    mixed = MixedDataset(CocoDataset(*real), SynthDataset(spec, length=32), real_fraction=0.25)
    batches = list(DataLoader(mixed, batch_size=8, shuffle=False))
    assert [sum(t["real"] for t in ts) for _, ts in batches] == [2, 2, 2, 2]
    names = ["background", *spec.categories]
    coco = json.loads(real[0].read_text())
    by_image = {im["id"]: im for im in coco["images"]}
    for _, ts in batches:
        for t in ts:
            if t["real"]:
                want = sorted({c["id"]: c["name"] for c in coco["categories"]}[a["category_id"]]
                              for a in coco["annotations"] if a["image_id"] == t["image_id"])
                assert sorted(names[i] for i in t["labels"].tolist()) == want and t["image_id"] in by_image
    # a plain `for` over it ends (it went on past its length for ever), and item -1 is the last
    small = MixedDataset(CocoDataset(*real), SynthDataset(spec, length=3), real_fraction=0.5)
    items = [t for _, t in itertools.islice(iter(small), 10)]
    assert len(items) == 3 and [t["real"] for t in items] == [False, True, False]
    assert small[-1][1]["image_id"] == items[-1]["image_id"]
    with pytest.raises(IndexError, match="item 3 of a dataset of length 3"):
        small[3]
    for kw, says in ((dict(real_fraction="0.5"), "real_fraction must be a number in"), (dict(real_fraction=0.5, length=2.7), "length must be"),
                     (dict(real_fraction=0.5, length=0), "length must be"), (dict(real_fraction=0.5, seed="x"), "seed must be"),
                     (dict(real_fraction=0.5, synthetic=[1, 2]), "synthetic must be a SynthDataset, not list")):
        args = {"synthetic": SynthDataset(spec, length=3), **kw}
        with pytest.raises(SynthgenError, match=says):
            MixedDataset(CocoDataset(*real), **args)
    other = dict(real_raw)
    other["classes"] = {"cat": real_raw["classes"]["ring"]}
    Generator(spec_from_dict(other)).generate(tmp_path / "cats", n=3)
    with pytest.raises(SynthgenError, match=r"real categories \['cat'\] are not classes of the synthetic spec"):
        MixedDataset(CocoDataset(tmp_path / "cats" / "annotations" / "instances_train.json", tmp_path / "cats" / "images" / "train"),
                     SynthDataset(spec, length=8), 0.5)


def test_bad_arguments_are_named_when_the_dataset_is_made(spec):
    """Not inside a DataLoader worker later, as a bare TypeError or an index error about sample
    -3 (epoch -1)."""
    for make, says in ((lambda: SynthDataset(spec, length=3, epoch=-1), "epoch must be a whole number >= 0, got -1"),
                       (lambda: SynthDataset(spec, length=3).set_epoch("a"), "epoch must be a whole number >= 0, got 'a'"),
                       (lambda: SynthDataset(spec, length=3, transforms=5), "transforms must be a torchvision v2 transform"),
                       (lambda: SynthDataset(5, length=3), "made from a spec file's path, a Spec or a Generator, not int"),
                       (lambda: SynthIterableDataset(spec, length=4, rank=2, world_size=2), "0 <= rank < world_size"),
                       (lambda: SynthIterableDataset(spec, length=4, rank=-1), "0 <= rank < world_size")):
        with pytest.raises(SynthgenError, match=says):
            make()
    ds = SynthDataset(spec, length=3)
    ds.set_epoch(np.int64(2))
    assert ds.epoch == 2 and ds.index_of(0) == 6
    ds.set_epoch(torch.tensor(3))  # an integer tensor, as a training loop may hold its epoch
    assert ds.epoch == 3
    with pytest.raises(SynthgenError, match="epoch must be a whole number >= 0, got 1.5"):
        ds.set_epoch(1.5)
    with pytest.raises(SynthgenError, match=r"epoch must be below 2\*\*63, got 9223372036854775808"):
        ds.set_epoch(2**63)  # it was shared with workers as int64 and wrapped round, silently
    ds.set_epoch(2**63 - 1)
    assert ds.epoch == 2**63 - 1
    for i in ("1", 1.0, slice(0, 2), None):  # a bare "'<=' not supported between int and str"
        with pytest.raises(TypeError, match="an item of a SynthDataset is a whole number, not"):
            ds[i]


def test_a_malformed_real_coco_file_is_refused_when_the_dataset_is_made(assets, tmp_path):
    """Not in a DataLoader worker half an epoch later: an annotation whose class is not in the
    file (its label would be unknown), a bbox of strings, a file that is not JSON."""
    from synthgen.torch import CocoDataset

    raw = base_spec(assets)
    raw["output"].update(formats=["coco"], split={"train": 1.0})
    Generator(spec_from_dict(raw)).generate(tmp_path / "real", n=4)
    f, images = tmp_path / "real" / "annotations" / "instances_train.json", tmp_path / "real" / "images" / "train"
    assert len(CocoDataset(f, images)) == 4
    good = json.loads(f.read_text())
    first = good["annotations"][0]["id"]
    for edit, says in ((lambda d: d["annotations"][0].update(category_id=99), f"annotation {first}: category_id 99 is not a category"),
                       (lambda d: d["annotations"][0].update(bbox=["a", 1, 2, 3]), f"annotation {first}: bbox \\['a', 1, 2, 3\\]"),
                       (lambda d: None, "not a readable COCO instances file")):
        data = json.loads(json.dumps(good))
        edit(data)
        f.write_text(json.dumps(data) if data != good else "{not json")
        with pytest.raises(SynthgenError, match=f"instances_train.json: .*{says}" if "readable" not in says else says):
            CocoDataset(f, images)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_workers_write_into_shared_memory_again_but_never_under_a_batch_still_held(spec, start):
    """synthgen's DataLoader has each worker write its batches into a few shared-memory segments
    again once the main process has let go of them. Batches kept whole, and a batch of which only
    a slice is kept, must keep their values while later batches stream through the same segments."""
    from synthgen.torch import POOL_SLOTS

    ds = SynthDataset(spec, length=120)
    want = [ds[i] for i in range(120)]
    loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context=start)
    kept, slices = {}, {}
    for b, (images, targets) in enumerate(loader):
        for k in range(2):
            assert torch.equal(images[k], want[2 * b + k][0]) and torch.equal(targets[k]["masks"], want[2 * b + k][1]["masks"])
        if b in (1, 8, 21):
            kept[b] = (images, targets)
        if b in (3, 12):
            slices[b] = images[1][:, 5:9]  # a view: the whole segment stays the main process's
    for b, (images, targets) in kept.items():
        for k in range(2):
            img, t = want[2 * b + k]
            assert torch.equal(images[k], img)
            for key in ("boxes", "labels", "masks", "area", "iscrowd"):
                assert torch.equal(targets[k][key], t[key]), (b, k, key)
    for b, view in slices.items():
        assert torch.equal(view, want[2 * b + 1][0][:, 5:9])
    # more batches came in pooled segments than the pool has: segments were released and used again
    assert loader.collate_fn._releases.received > 2 * POOL_SLOTS
    import copy

    assert copy.deepcopy(loader.collate_fn)([want[0]]) == ([want[0][0]], [want[0][1]])  # a copy collates as collate does


def test_segments_come_back_to_the_workers_after_an_epoch_that_held_every_batch(spec):
    """``list(loader)`` holds more batches than the pool has segments: workers then send batches
    in new segments. Once the list is gone, the next epoch's batches must be pooled again."""
    from synthgen.torch import POOL_SLOTS

    ds = SynthDataset(spec, length=80)
    loader = DataLoader(ds, batch_size=2, num_workers=2, persistent_workers=True)
    held = list(loader)
    before = loader.collate_fn._releases.received
    assert before <= 2 * POOL_SLOTS
    del held
    ds.set_epoch(1)
    for _ in loader:
        pass
    assert loader.collate_fn._releases.received - before > 40 - 2 * POOL_SLOTS - 2


class _Growing(torch.utils.data.Dataset):
    """Items that grow (item i holds 2**i KiB filled with i), batched through ``fetch`` as
    synthgen's datasets are: batches outgrow the segments their worker sized from earlier ones."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.full((i + 1, 8, 8), i, dtype=torch.uint8), {"big": torch.full((1 << i, 1024), i, dtype=torch.uint8), "id": i}

    def __getitems__(self, indices):
        from synthgen.torch.loader import fetch

        return fetch(self.__getitem__, indices)


def test_items_written_into_a_segment_one_by_one_survive_a_batch_that_outgrows_it():
    loader = DataLoader(_Growing(), batch_size=3, num_workers=1, persistent_workers=True)
    for epoch in range(3):
        batches = list(loader) if epoch == 1 else [b for b in loader]
        for b, (images, targets) in enumerate(batches):
            for k, (image, target) in enumerate(zip(images, targets)):
                i = 3 * b + k
                assert target["id"] == i and image.shape == (i + 1, 8, 8) and bool((image == i).all())
                assert target["big"].shape == (1 << i, 1024) and bool((target["big"] == i).all()), (epoch, i)


class _Failing(_Growing):
    """Item 4 fails while its batch is being written into a segment (while ``fail`` is set)."""

    fail = True

    def __getitem__(self, i):
        if i == 4 and self.fail:
            raise ValueError("item 4 is broken")
        return super().__getitem__(min(i, 3))


def test_an_item_that_fails_in_a_worker_reaches_the_loop_and_the_loader_goes_on():
    ds = _Failing()
    loader = DataLoader(ds, batch_size=3, num_workers=1, persistent_workers=True)
    for _ in range(3):
        with pytest.raises(ValueError, match="item 4 is broken"):
            for _ in loader:
                pass
    assert [t["id"] for t in next(iter(loader))[1]] == [0, 1, 2]


def test_a_segment_an_item_failed_in_goes_back_to_the_pool(monkeypatch):
    """The pool's bookkeeping in a worker (torch's worker info stood in for): a batch whose item
    fails while it is written into a segment sends nothing, so the segment must be free again."""
    from types import SimpleNamespace

    from synthgen.torch import POOL_SLOTS
    from synthgen.torch import segments as L

    monkeypatch.setattr(L, "get_worker_info", lambda: SimpleNamespace(id=0, num_workers=1))
    pool = L._SegmentPool()
    pool.renew(1)
    ds = _Failing()
    assert not isinstance(pool.fetch(ds.__getitem__, [0, 1, 2]), L._Written)  # the first batch sizes the segments
    for _ in range(POOL_SLOTS + 1):
        with pytest.raises(ValueError, match="item 4 is broken"):
            pool.fetch(ds.__getitem__, [3, 4, 5])
        assert list(pool.held) == [0] * POOL_SLOTS
    written = pool.fetch(ds.__getitem__, [0, 1, 2])
    assert isinstance(written, L._Written) and written.slot >= 0 and list(pool.held).count(1) == 1


def test_collate_of_an_empty_batch():
    assert collate([]) == ([], [])


class _Uneven(torch.utils.data.Dataset):
    """Item i is i and the worker that made it; worker 0 takes 20 ms an item, worker 1 none (a
    worker on a slower core)."""

    def __len__(self):
        return 96

    def __getitem__(self, i):
        import time

        info = torch.utils.data.get_worker_info()
        if info is not None and info.id == 0:
            time.sleep(0.02)
        return torch.tensor([i]), {"worker": -1 if info is None else info.id}


def test_a_slow_worker_is_sent_fewer_batches_and_batches_still_come_in_order():
    """balance=True: each batch goes to the worker with the fewest batches still to make, a
    worker whose batches came before the one the loop waits for is sent more, and the loop still
    gets batch 0, 1, 2, ... in order; balance=False: torch's turn order."""
    for balance in (True, False):
        loader = DataLoader(_Uneven(), batch_size=4, num_workers=2, balance=balance)
        window = loader.prefetch_factor * 2  # torch's: prefetch_factor x num_workers batches sent and not yet taken
        items, workers, ahead = [], [], []
        it = iter(loader)
        for images, targets in it:
            items += [int(x) for x in images]
            workers.append(targets[0]["worker"])
            assert {t["worker"] for t in targets} == {workers[-1]}
            making = [sum(1 for v in it._task_info.values() if len(v) == 1 and v[0] == w) for w in (0, 1)]
            assert max(making) <= loader.prefetch_factor, making  # as many in the making per worker as torch allows
            ahead.append(it._send_idx - it._rcvd_idx)
            assert ahead[-1] <= 2 * window, ahead
        assert items == list(range(96)), balance
        if balance:
            # 80 ms a batch against next to nothing: 6 of 24 here (8 when a worker is sent only
            # one batch for each the loop takes, as torch does), 12 in turn
            assert workers.count(0) <= 7, workers
            assert max(ahead) > window, ahead  # the fast worker went on while the loop waited for the slow one
        else:
            assert workers == [0, 1] * 12
            assert max(ahead) <= window, ahead


def test_balancing_is_on_by_default_only_where_an_item_is_the_same_from_any_worker(spec, assets, tmp_path):
    from synthgen.torch import CocoDataset
    from synthgen.torch.loader import _BalancedIter

    assert DataLoader(SynthDataset(spec, length=4), num_workers=2).balance
    assert DataLoader(SynthDataset(spec, length=4, transforms=_draws), num_workers=2).balance  # seeded by the sample
    assert not DataLoader(_Uneven(), num_workers=2, balance=None).balance
    assert DataLoader(_Uneven(), num_workers=2, balance=True).balance
    assert not DataLoader(SynthIterableDataset(spec, length=4), num_workers=2).balance
    assert not DataLoader(_Uneven(), num_workers=2).balance
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": SynthDataset(spec, length=1).classes[0]}]}))
    real = CocoDataset(coco, tmp_path)
    assert DataLoader(real, num_workers=2).balance
    assert DataLoader(MixedDataset(real, SynthDataset(spec, length=4), 0.5), num_workers=2).balance
    # an iterable dataset's batches depend on the worker that makes them: never balanced, even when asked
    stream = SynthIterableDataset(spec, length=12)
    loader = DataLoader(stream, batch_size=2, num_workers=2, balance=True)
    it = iter(loader)
    assert not isinstance(it, _BalancedIter)
    assert sorted(t["image_id"] for _, ts in it for t in ts) == list(range(12))
    balanced = SynthDataset(spec, length=12)
    it = iter(DataLoader(balanced, batch_size=3, num_workers=2))
    assert isinstance(it, _BalancedIter)
    for b, (images, targets) in enumerate(it):
        for k, (image, target) in enumerate(zip(images, targets)):
            want_image, want = balanced[3 * b + k]
            assert target["image_id"] == 3 * b + k and torch.equal(image, want_image) and torch.equal(target["boxes"], want["boxes"])


HANG = """
import sys, torch
from synthgen.torch import SynthDataset, DataLoader
{imports}
def main():
    ds = SynthDataset({spec!r}, length=6)
    ds[0]  # render one sample in the main process: it now holds an OpenGL context
    loader = {loader}(ds, batch_size=2, num_workers=2{extra})
    ids = [t["image_id"] for _, ts in loader for t in ts]
    print("ids", ids)

if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
@needs_gl()
def test_renderer_in_dataloader_workers_after_the_main_process_rendered(shared, tmp_path):
    """The sequence that hung: render in the main process, then a 2-worker DataLoader. torch's
    default (fork) now fails at once with advice; synthgen's DataLoader spawns and works."""
    from .test_renderer import _spec

    raw = _spec(shared, output={"size": [96, 72], "formats": ["coco"]})
    spec = write_spec(tmp_path / "r.yaml", raw)
    script = tmp_path / "hang.py"
    script.write_text(HANG.format(spec=str(spec), imports="", loader="torch.utils.data.DataLoader",
                                  extra=", collate_fn=lambda b: tuple(zip(*b))"))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert r.returncode != 0 and "forked from process" in r.stderr and "multiprocessing_context='spawn'" in r.stderr, r.stderr[-2000:]
    script.write_text(HANG.format(spec=str(spec), imports="", loader="DataLoader", extra=""))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ids [0, 1, 2, 3, 4, 5]" in r.stdout, r.stderr[-2000:]


@needs_gl()
def test_renderer_extras_when_asked(shared):
    from .test_renderer import _spec

    raw = _spec(shared, output={"size": [96, 72], "formats": ["coco"]})
    ds = SynthDataset(spec_from_dict(raw), length=4, keypoints=True, depth=True, camera_K=True, poses=True)
    for i in range(4):
        img, t = ds[i]
        n = len(t["labels"])
        assert t["keypoints"].shape == (n, 9, 3) and t["poses"].shape == (n, 4, 4)
        assert t["depth"].shape == (72, 96) and t["camera_K"].shape == (3, 3)
    with pytest.raises(SynthgenError, match="come from the renderer"):
        SynthDataset(spec_from_dict(base_spec_for_error()), length=2, depth=True)


def base_spec_for_error():
    from .conftest import SHARED

    return {"backgrounds": {"paths": [str(SHARED / "backgrounds")]},
            "classes": {"x": {"source": str(SHARED / "cutpaste-bigbird" / "objects" / "mahatma_rice"), "mask": "{stem}.pbm",
                              "mask_inverted": True}}}


def test_readme_style_loop_runs_as_a_script(spec, assets, tmp_path):
    """A training loop as the README shows it: a DataLoader with 2 workers, epochs, a model step."""
    path = write_spec(tmp_path / "s.yaml", base_spec(assets))
    script = tmp_path / "loop.py"
    script.write_text(textwrap.dedent(f"""
        import torch
        from synthgen.torch import SynthDataset, DataLoader

        if __name__ == "__main__":
            ds = SynthDataset({str(path)!r}, length=8)
            loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
            seen = []
            for epoch in range(2):
                ds.set_epoch(epoch)
                for images, targets in loader:
                    assert len(images) == 4
                    seen += [t["image_id"] for t in targets]
            assert seen == list(range(16)), seen  # fresh samples every epoch
            print("ok")
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


@needs_gl()
def test_albumentations_moves_renderer_keypoints_with_the_image(shared):
    import albumentations as A

    from .test_renderer import _spec

    spec = spec_from_dict(_spec(shared, output={"size": [160, 120], "formats": ["coco"]}))
    t = A.Compose([A.HorizontalFlip(p=1.0)], seed=0, keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))
    plain = SynthDataset(spec, length=3, keypoints=True)
    flipped = SynthDataset(spec, length=3, keypoints=True, transforms=t)
    for i in range(3):
        _, a = plain[i]
        _, b = flipped[i]
        # pixel centres at whole numbers (OpenCV's K, as synthgen's): a point at x lands on 159 - x
        assert torch.allclose(b["keypoints"][..., 0], 159 - a["keypoints"][..., 0], atol=1e-4)
        assert torch.equal(b["keypoints"][..., 1:], a["keypoints"][..., 1:])


@pytest.mark.parametrize("float_images", [False, True])
def test_a_worker_draws_items_in_the_batch_segment_and_copies_only_the_rest(spec, monkeypatch, float_images):
    """In a worker (torch's worker info stood in for), synthetic items are made in the segment
    their batch travels in (``synthgen.arena``): image, masks, boxes, labels, areas are not copied
    there. What a dataset makes anew after generating (float images) is copied; values are ds[i]'s
    either way."""
    from types import SimpleNamespace

    from synthgen.torch import segments as L

    monkeypatch.setattr(L, "get_worker_info", lambda: SimpleNamespace(id=0, num_workers=1))
    copied = []
    real_copy = L._copy_into
    monkeypatch.setattr(L, "_copy_into", lambda storage, offset, t, src, hwc: copied.append(t.numel()) or real_copy(storage, offset, t, src, hwc))
    ds = SynthDataset(spec, length=24, float_images=float_images)
    pool = L._SegmentPool()
    pool.renew(1)
    assert not isinstance(pool.fetch(ds.__getitem__, range(8)), L._Written)  # the first batch sizes the segments
    for batch in (range(8, 16), range(16, 24)):
        copied.clear()
        items = pool.fetch(ds.__getitem__, list(batch))
        assert isinstance(items, L._Written)
        lo = items.storage.data_ptr()
        hi = lo + items.storage.nbytes()
        for i, (image, target) in zip(batch, items):
            want_image, want = ds[i]
            assert torch.equal(image, want_image) and image.dtype == want_image.dtype
            for k in ("boxes", "labels", "masks", "area", "iscrowd"):
                assert torch.equal(target[k], want[k]), (i, k)
            for t in (image, *(v for v in target.values() if isinstance(v, torch.Tensor))):
                if t.numel():  # all of it in the segment's memory (drawn there, or copied in)
                    last = t.data_ptr() + sum((n - 1) * s for n, s in zip(t.shape, t.stride())) * t.element_size()
                    assert lo <= t.data_ptr() and last < hi
        H, W = ds[0][0].shape[-2:]
        assert [n for n in copied if n] == ([3 * H * W] * 8 if float_images else []), copied  # the float images
        pool.held[items.slot] = 0  # as the main process does once it holds nothing of the batch


def test_a_batch_in_one_segment_pickles_as_one_tensor(spec, monkeypatch):
    """Pickled for the trip to the training process, a collated batch is its one segment (as one
    tensor) and where each tensor lies in it: torch alone pickles, and the receiver rebuilds,
    every tensor on its own (48 for 8 detection targets). Unpickled, it is the same batch."""
    import pickle
    from multiprocessing.reduction import ForkingPickler
    from types import SimpleNamespace

    import torch.multiprocessing.reductions as R

    from synthgen.torch import loader as L
    from synthgen.torch import segments as S

    monkeypatch.setattr(L, "get_worker_info", lambda: SimpleNamespace(id=0, num_workers=1))
    ds = SynthDataset(spec, length=6)
    items = [ds[i] for i in range(6)]
    batch = collate(items)
    assert isinstance(batch, S._OneSegment)
    tensors = []
    ForkingPickler.register(torch.Tensor, lambda t: tensors.append(t) or R.reduce_tensor(t))
    try:
        data = bytes(ForkingPickler.dumps(batch))
    finally:
        ForkingPickler.register(torch.Tensor, R.reduce_tensor)
    assert len(tensors) == 1 and tensors[0].untyped_storage().data_ptr() == batch.storage.data_ptr()
    images, targets = pickle.loads(data)
    assert type(images) is list and type(targets) is list
    for (image, want), got_image, got in zip(items, images, targets):
        assert torch.equal(got_image, image) and got_image.stride() == image.stride()
        assert got.keys() == want.keys() and got["image_id"] == want["image_id"]
        for k in ("boxes", "labels", "masks", "area", "iscrowd"):
            assert torch.equal(got[k], want[k]) and got[k].dtype == want[k].dtype, k


def test_a_batch_in_a_segment_the_training_process_keeps_travels_by_slot_alone(spec, monkeypatch):
    """Worker and training process in one (torch's worker info stood in for): the first batch in
    each pooled segment is pickled as that segment; the receiver keeps its descriptor, and later
    batches in the same segment are pickled with no tensor at all and mapped again on arrival.
    Every batch unpickles to the items ds[i] gives."""
    import pickle
    from multiprocessing.reduction import ForkingPickler
    from types import SimpleNamespace

    import torch.multiprocessing.reductions as R

    from synthgen.torch import POOL_SLOTS
    from synthgen.torch import segments as L

    monkeypatch.setattr(L, "get_worker_info", lambda: SimpleNamespace(id=0, num_workers=1))
    ds = SynthDataset(spec, length=4 * (3 * POOL_SLOTS + 1))
    pool = L._SegmentPool()
    pool.renew(1)
    tensors: list = []
    ForkingPickler.register(torch.Tensor, lambda t: tensors.append(t) or R.reduce_tensor(t))
    sent = []
    try:
        for b in range(3 * POOL_SLOTS + 1):
            indices = list(range(4 * b, 4 * b + 4))
            batch = pool(pool.fetch(ds.__getitem__, indices))
            tensors.clear()
            data = bytes(ForkingPickler.dumps(batch))
            sent.append((batch.slot, len(tensors)))
            del batch
            images, targets = pickle.loads(data)
            for i, image, target in zip(indices, images, targets):
                want_image, want = ds[i]
                assert torch.equal(image, want_image) and target["image_id"] == want["image_id"]
                for k in ("boxes", "labels", "masks", "area", "iscrowd"):
                    assert torch.equal(target[k], want[k]), (b, i, k)
            del images, targets
            if len(sent) > 2:  # in one process the segment is still the pool's own storage: let go by hand (two
                pool.held[sent[-3][0]] = 0  # batches late), as the training process does once it holds nothing of it
    finally:
        ForkingPickler.register(torch.Tensor, R.reduce_tensor)
    seen = set()
    for slot, n in sent:
        assert slot >= 0 and n == (0 if slot in seen else 1), sent  # the segment, as one tensor; then by slot alone
        seen.add(slot)
    assert len(seen) == 3 and len(sent) > 2 * len(seen)
    assert sorted(pool._releases.descriptors) == sorted(seen)


def test_workers_sharing_by_file_name_still_hand_over_batches(spec):
    """Under torch's ``file_system`` sharing strategy segments go by name; the training process
    keeps no descriptor of them, and batches come as they are."""
    ds = SynthDataset(spec, length=24)
    want = [ds[i] for i in range(24)]
    before = torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy("file_system")
    try:
        loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="fork")
        for _ in range(2):
            for b, (images, targets) in enumerate(loader):
                for k in range(2):
                    assert torch.equal(images[k], want[2 * b + k][0]) and torch.equal(targets[k]["masks"], want[2 * b + k][1]["masks"])
        assert loader.collate_fn._releases.received > 0 and not loader.collate_fn._releases.descriptors
    finally:
        torch.multiprocessing.set_sharing_strategy(before)


def test_an_index_is_written_to_the_worker_pipe_at_once_and_never_overtakes_a_put():
    """synthgen's balanced loader writes a worker's next index itself instead of leaving it to the
    queue's feeder thread (which waits for the training loop's interpreter lock); where that
    thread still holds something, the index is put behind it."""
    import multiprocessing

    from synthgen.torch.loader import _put_now

    q = multiprocessing.get_context("spawn").Queue()
    _put_now(q, (0, [1, 2]))
    assert q._thread is None  # no feeder thread: written here
    assert q.get(timeout=5) == (0, [1, 2])
    q.put("first")  # through the feeder thread, as torch's own puts go
    _put_now(q, "second")
    assert [q.get(timeout=5), q.get(timeout=5)] == ["first", "second"]
    q.close()
    with pytest.raises(ValueError):
        _put_now(q, "after close")  # as put says


def test_a_balanced_loader_sends_indices_without_feeder_threads(spec):
    loader = DataLoader(SynthDataset(spec, length=12), batch_size=3, num_workers=2, persistent_workers=True)
    it = iter(loader)
    assert [len(images) for images, _ in it] == [3, 3, 3, 3]
    assert all(q._thread is None for q in it._index_queues)
    assert [len(images) for images, _ in loader] == [3, 3, 3, 3]  # a second epoch (torch's resume message put first)


def test_a_balanced_loader_with_persistent_workers_starts_a_new_epoch_after_one_left_early():
    """A new epoch of persistent workers begins with torch waiting for each worker to confirm it,
    dropping whatever else comes meanwhile (the rest of the epoch left early): no batch of the
    new epoch may be sent before that, or it is dropped and the loop waits for it forever."""
    loader = DataLoader(_Uneven(), batch_size=4, num_workers=2, balance=True, persistent_workers=True, timeout=30)
    for _ in range(3):
        for _ in loader:
            break  # left early: the workers are still making the rest of the window
        assert [int(x) for images, _ in loader for x in images] == list(range(96))
