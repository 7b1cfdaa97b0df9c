"""Recognizer backends side by side: build time, detect and embed medians, same/different scores.

    python benchmarks/backends.py                    # every installed backend, 5 rounds
    python benchmarks/backends.py --rounds 20 --backends onnx openvino
    python benchmarks/backends.py --per-photo        # detect median per photograph too

Runs on the shared photographs (``$FACEGATE_FACES``, else ``../shared/data/faces`` next to the
repository), read in place.  Timings are medians of wall-clock time per call after one warm-up
pass, including pre/post-processing; ratios are against ``onnx`` (the default recognizer) measured
in the same run.  ``onnx-qdq`` is ``onnx`` without ``session.disable_quant_qdq=1``, to show why the
plugin sets it.  The machine's other load shows up in the numbers: compare rows, not runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
FACES = Path(os.environ.get("FACEGATE_FACES", ROOT.parent / "shared" / "data" / "faces"))
PHOTOS = [
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
]
PAIRS = [("obama.jpg", "obama2.jpg"), ("obama.jpg", "obama3.jpg"), ("obama.jpg", "biden.jpg")]


def read(name: str) -> np.ndarray:
    with Image.open(FACES / name) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def build_onnx(config: dict[str, Any]) -> tuple[Any, Any]:
    import facegate_onnx

    return facegate_onnx.INFO, facegate_onnx.make(config)


def build_onnx_qdq(config: dict[str, Any]) -> tuple[Any, Any]:
    """ONNX Runtime keeping the int8 graphs' Q/DQ pairs (its default)."""
    import facegate_onnx
    import onnxruntime
    from facegate_zoo_models import Settings, ZooRecognizer

    class KeepQdq(facegate_onnx.OnnxRunner):
        def __init__(self, path: Path, threads: int | None) -> None:
            self.path = path
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            if threads is not None:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            first = self._session.get_inputs()[0]
            self._input = first.name
            self.input_shape = tuple(d if isinstance(d, int) else None for d in first.shape)
            self.output_names = tuple(o.name for o in self._session.get_outputs())

    settings = Settings.from_config(config)
    return facegate_onnx.INFO, ZooRecognizer(
        settings,
        KeepQdq(settings.detector_path, settings.threads),
        KeepQdq(settings.recognizer_path, settings.threads),
    )


def build_openvino(config: dict[str, Any]) -> tuple[Any, Any]:
    import facegate_openvino

    return facegate_openvino.INFO, facegate_openvino.make(config)


def build_dlib(config: dict[str, Any]) -> tuple[Any, Any]:
    import facegate_dlib

    config = {k: v for k, v in config.items() if k != "threads"}  # dlib's HOG is single-threaded
    return facegate_dlib.INFO, facegate_dlib.make(config)


BACKENDS: dict[str, tuple[str, Callable[[dict[str, Any]], tuple[Any, Any]]]] = {
    "onnx": ("facegate_onnx", build_onnx),
    "onnx-qdq": ("facegate_onnx", build_onnx_qdq),
    "openvino": ("facegate_openvino", build_openvino),
    "dlib": ("facegate_dlib", build_dlib),
}


def timed(call: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call(*args)
    return (time.perf_counter() - start) * 1000.0, result


def score(info: Any, a: np.ndarray, b: np.ndarray) -> float:
    if info.metric == "cosine":
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    return float(np.linalg.norm(a - b))


def measure(
    name: str, images: dict[str, np.ndarray], rounds: int, threads: int | None
) -> dict[str, Any]:
    config: dict[str, Any] = {"threads": threads} if threads else {}
    build_ms, (info, recognizer) = timed(BACKENDS[name][1], config)
    faces = {photo: recognizer.detect(image) for photo, image in images.items()}  # warm-up pass
    vectors = {
        photo: recognizer.embed(images[photo], found[0]) for photo, found in faces.items() if found
    }
    detect: dict[str, list[float]] = {photo: [] for photo in images}
    embed: list[float] = []
    for _ in range(rounds):
        for photo, image in images.items():
            detect[photo].append(timed(recognizer.detect, image)[0])
            for face in faces[photo][:1]:
                embed.append(timed(recognizer.embed, image, face)[0])
    return {
        "info": info,
        "build_ms": build_ms,
        "detect_ms": statistics.median(t for ts in detect.values() for t in ts),
        "detect_per_photo": {photo: statistics.median(ts) for photo, ts in detect.items()},
        "embed_ms": statistics.median(embed) if embed else float("nan"),
        "faces": {photo: len(found) for photo, found in faces.items()},
        "scores": {
            f"{a.split('.')[0]}~{b.split('.')[0]}": score(info, vectors[a], vectors[b])
            for a, b in PAIRS
            if a in vectors and b in vectors
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(BACKENDS))
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed passes over the photographs (default 5)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="runtime threads (default: the runtime's)"
    )
    parser.add_argument(
        "--per-photo", action="store_true", help="also print detect medians per photograph"
    )
    args = parser.parse_args()

    images = {photo: read(photo) for photo in PHOTOS}
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus; photos from {FACES}"
    )
    print(
        f"{len(images)} photos x {args.rounds} rounds; embed timed on the best face of each photo with one\n"
    )
    results: dict[str, dict[str, Any]] = {}
    for name in args.backends:
        module = BACKENDS[name][0]
        if importlib.util.find_spec(module) is None:
            print(f"  {name}: skipped, `{module}` is not installed")
            continue
        results[name] = measure(name, images, args.rounds, args.threads)

    base = results.get("onnx")
    pairs = [f"{a.split('.')[0]}~{b.split('.')[0]}" for a, b in PAIRS]
    header = (
        f"{'backend':<10}{'build ms':>10}{'detect ms':>11}{'x onnx':>8}{'embed ms':>10}{'x onnx':>8}  {'metric':<17}"
        + "".join(f"{p:>15}" for p in pairs)
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        info = r["info"]
        d_ratio = f"{r['detect_ms'] / base['detect_ms']:.2f}" if base else "-"
        e_ratio = f"{r['embed_ms'] / base['embed_ms']:.2f}" if base else "-"
        rule = f"{info.metric} {'>' if info.metric == 'cosine' else '<'} {info.threshold}"
        scores = "".join(f"{r['scores'].get(p, float('nan')):>15.3f}" for p in pairs)
        print(
            f"{name:<10}{r['build_ms']:>10.0f}{r['detect_ms']:>11.1f}{d_ratio:>8}{r['embed_ms']:>10.1f}{e_ratio:>8}  {rule:<17}{scores}"
        )
    print()
    print(
        "faces found: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{p.split('.')[0]} {n}" for p, n in r["faces"].items())
            for name, r in results.items()
        )
    )
    if args.per_photo:
        print()
        print(f"{'detect ms':<26}" + "".join(f"{name:>10}" for name in results))
        for photo in PHOTOS:
            shape = "x".join(map(str, images[photo].shape[1::-1]))
            print(
                f"{photo:<16}{shape:>10}"
                + "".join(f"{r['detect_per_photo'][photo]:>10.1f}" for r in results.values())
            )


if __name__ == "__main__":
    main()
