"""Memory of a region store at VQA scale: assembling it and training over it, at 1 and 10 questions per image.

Builds a :class:`cotrain.data.stores.VisualStore` of ``--images`` images x 36 regions x 2048
features (float16, as real sources store them; plus float32 boxes and a region mask) row by row
with :class:`~cotrain.data.stores.StoreWriter` into a temporary folder on disk (deleted after),
gives it ``q`` questions per image (per-row arrays: ``visual_index``, ``image_id``, 16 token ids,
a label), then opens it memory-mapped and draws ``--batches`` training batches of
``--batch-size`` rows with the :class:`~cotrain.data.arrays.BatchIterator` (seeded random order:
every batch gathers ``batch-size`` scattered images from the file).

Each ``q`` of ``--questions`` runs in a fresh process, so its peaks are its own. Memory is read
from ``/proc/self/status``: the **peak RSS** of each phase is ``VmHWM`` (reset between the phases
by writing 5 to ``/proc/self/clear_refs``), which counts every resident page of the process:
anonymous memory (``RssAnon``: arrays, torch, Python) *and* file-backed pages mapped into it
(``RssFile``: shared libraries, and the store's pages read through the memory map). The largest
``RssAnon`` and ``RssFile`` seen (sampled every 500 rows written and after every batch) are shown
beside it. The store's mapped pages are released every 256 MiB gathered
(:meth:`VisualStore.take`; ``--resident-limit-mb`` changes that, e.g. to show what RSS does
without it), so the file-backed part stays bounded however large the store; the page cache
keeping the file is the kernel's, not the process's. ``ru_maxrss`` (the process's
lifetime peak, never reset) is shown too.

The last line is ``rss_mb=<the largest peak RSS of every phase and run>``.

    python benchmarks/region_store.py [--images 20000] [--questions 1,10] [--batches 1600] [--batch-size 128]
                                      [--resident-limit-mb 256]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REGIONS, FEATURES, TEXT_LEN, ANSWERS = 36, 2048, 16, 3129


def status_mb() -> dict[str, float]:
    """``VmRSS``, ``VmHWM``, ``RssAnon``, ``RssFile`` of this process in MB (empty off Linux)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def reset_peak() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Peaks:
    """The largest RssAnon / RssFile seen by :meth:`sample`."""

    def __init__(self) -> None:
        self.anon = self.file = 0.0

    def sample(self) -> None:
        s = status_mb()
        self.anon, self.file = max(self.anon, s.get("RssAnon", 0.0)), max(self.file, s.get("RssFile", 0.0))

    def phase(self, seconds: float) -> dict:
        self.sample()
        return {"peak_mb": status_mb().get("VmHWM", 0.0), "anon_max_mb": self.anon, "file_max_mb": self.file,
                "seconds": seconds}


def run_one(images: int, questions: int, batches: int, batch_size: int, features: int, parent: str | None,
            resident_limit_mb: int) -> dict:
    """Assemble a store and iterate over it in this process; the measurements as a dict."""
    import numpy as np

    from cotrain.data.arrays import BatchIterator, Split
    from cotrain.data.stores import StoreWriter, VisualStore

    folder = Path(tempfile.mkdtemp(prefix="cotrain_region_store_", dir=parent))
    out = {"images": images, "questions": questions, "rows": images * questions, "after_imports": status_mb(),
           "peak_reset": reset_peak()}
    try:
        rng = np.random.default_rng(0)
        peaks, t0 = Peaks(), time.perf_counter()
        with StoreWriter(images, folder / "visual") as writer:  # one image at a time, straight to disk
            for i in range(images):
                n = 10 + i % (REGIONS - 9)  # 10..36 real regions
                feats = np.zeros((REGIONS, features), np.float32)
                feats[:n] = rng.random((n, features), dtype=np.float32) * 8
                x0 = rng.random((REGIONS, 2), dtype=np.float32) * 0.5
                boxes = np.concatenate([x0, x0 + 0.4], axis=1) * (np.arange(REGIONS) < n)[:, None]
                writer.append(regions=feats, boxes=boxes, region_mask=np.arange(REGIONS) < n)
                if i % 500 == 0:
                    peaks.sample()
            store = writer.close()
        out["store_gb"] = store.nbytes / 1e9
        rows = images * questions
        arrays = {  # what grows with the questions: the per-row arrays
            "visual_index": np.repeat(np.arange(images, dtype=np.int64), questions),
            "image_id": np.repeat(np.arange(images, dtype=np.int64), questions),
            "text": rng.integers(1, 30000, (rows, TEXT_LEN), dtype=np.int64),
            "label": rng.integers(0, ANSWERS, rows, dtype=np.int64),
        }
        out["row_arrays_mb"] = sum(a.nbytes for a in arrays.values()) / 1e6
        out["assemble"] = peaks.phase(time.perf_counter() - t0)
        del store

        reset_peak()
        peaks, t0 = Peaks(), time.perf_counter()
        split = Split(arrays, {"visual": VisualStore.open(folder / "visual", resident_limit=resident_limit_mb << 20)})
        it = BatchIterator(split, batch_size, seed=0)
        checksum = 0.0
        for b in range(batches):
            batch = next(it)
            checksum += float(batch["regions"][:, 0, 0].float().sum())  # the gathered rows are used
            peaks.sample()
        out["iterate"] = peaks.phase(time.perf_counter() - t0)
        out["iterate"].update(batches=batches, epochs=round(batches * batch_size / rows, 2), checksum=checksum)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20000, help="stored images (default 20000)")
    ap.add_argument("--questions", default="1,10", help="questions per image, one run each (default 1,10)")
    ap.add_argument("--batches", type=int, default=1600, help="training batches drawn per run (default 1600)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--features", type=int, default=FEATURES, help="region feature size F (default 2048)")
    ap.add_argument("--resident-limit-mb", type=int, default=256,
                    help="MiB gathered from the mapped store between releases of its pages (default 256, as cotrain)")
    ap.add_argument("--dir", default=None, help="parent of the temporary store folder (default: the system temp dir)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    questions = [int(q) for q in str(args.questions).split(",") if q.strip()]
    if args.images < 1 or not questions or min(questions) < 1 or args.batches < 1 or args.batch_size < 1:
        ap.error("--images, --questions, --batches and --batch-size must be positive")
    if args.child:
        print(json.dumps(run_one(args.images, questions[0], args.batches, args.batch_size, args.features, args.dir,
                                 args.resident_limit_mb)))
        return 0

    results = []
    for q in questions:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--images", str(args.images), "--questions",
               str(q), "--batches", str(args.batches), "--batch-size", str(args.batch_size), "--features",
               str(args.features), "--resident-limit-mb", str(args.resident_limit_mb)]
        cmd += ["--dir", args.dir] if args.dir else []
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            return done.returncode
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    r0 = results[0]
    print(f"region store: {args.images} images x {REGIONS} regions x {args.features} features (float16) = "
          f"{r0['store_gb']:.2f} GB on disk; batches of {args.batch_size}, {args.batches} per run; mapped pages "
          f"released every {args.resident_limit_mb} MiB gathered "
          f"(peak RSS = VmHWM per phase{'' if r0['peak_reset'] else ', NOT reset between phases'}; "
          f"after imports {r0['after_imports'].get('VmRSS', 0):.0f} MB, of it "
          f"{r0['after_imports'].get('RssFile', 0):.0f} MB file-backed: shared libraries)")
    print()
    print("| questions / image | rows | row arrays MB | assemble: peak RSS MB (anon / file max) | assemble s "
          "| iterate: peak RSS MB (anon / file max) | batches/s | epochs | ru_maxrss MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        a, it = r["assemble"], r["iterate"]
        print(f"| {r['questions']} | {r['rows']} | {r['row_arrays_mb']:.1f} "
              f"| {a['peak_mb']:.0f} ({a['anon_max_mb']:.0f} / {a['file_max_mb']:.0f}) | {a['seconds']:.1f} "
              f"| {it['peak_mb']:.0f} ({it['anon_max_mb']:.0f} / {it['file_max_mb']:.0f}) "
              f"| {it['batches'] / max(it['seconds'], 1e-9):.1f} | {it['epochs']} | {r['ru_maxrss_mb']:.0f} |")
    peak = max(max(r["assemble"]["peak_mb"], r["iterate"]["peak_mb"]) for r in results)
    if len(results) > 1:
        lo, hi = min(results, key=lambda r: r["questions"]), max(results, key=lambda r: r["questions"])
        d = {ph: hi[ph]["peak_mb"] - lo[ph]["peak_mb"] for ph in ("assemble", "iterate")}
        print()
        print(f"{lo['questions']} -> {hi['questions']} questions per image: peak RSS changes by "
              f"{d['assemble']:+.0f} MB assembling and {d['iterate']:+.0f} MB iterating; the per-row arrays grow by "
              f"{hi['row_arrays_mb'] - lo['row_arrays_mb']:.0f} MB, the store ({r0['store_gb']:.2f} GB) not at all")
    print(f"rss_mb={peak:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
