"""How long a fresh process takes to load w600k_mbf (its graph declares batch 1 and runs any
batch, so its first dimension is freed before onnxruntime loads it): the edit made with the
``onnx`` package, as before, against the edit made on the file's bytes, side by side.

Each round starts two fresh interpreters in turn; each one imports facerec, builds the model
manager on a model folder holding ../shared/models' w600k_mbf, and loads the model; the time is
taken inside the process from before the imports to the loaded model.

    python -m bench.bench_model_load --rounds 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_sizes import model_dir
from bench.report import load_average, percentile, write_section

MODEL = "w600k_mbf"
WAYS = ("onnx package (before)", "bytes edit (now)")

CHILD = """
import json, sys, time
started = time.perf_counter()
from facerec.config import Settings
from facerec.inference.manager import ModelManager
from facerec.inference.registry import build_models
if sys.argv[2] == "before":
    import onnx
    from facerec.inference.embedders import onnx_embedder

    def with_onnx(path, spec):
        model = onnx.load(str(path))
        graph = model.graph
        names = {spec.input_name or graph.input[0].name, spec.output_name or graph.output[0].name}
        for value in (*graph.input, *graph.output):
            dims = value.type.tensor_type.shape.dim
            if value.name in names and len(dims) > 0:
                dims[0].dim_param = "N"
        del graph.value_info[:]
        return model.SerializeToString()

    onnx_embedder.free_batch_dimension = with_onnx
settings = Settings(_env_file=None, models={"model_dir": sys.argv[1]})
manager = ModelManager(build_models(settings), settings.models)
manager.preload([sys.argv[3]])
print(json.dumps({"s": time.perf_counter() - started, "onnx": "onnx" in sys.modules}))
"""


def load_once(models: Path, way: str) -> tuple[float, bool]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(models), way, MODEL],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["s"]), bool(result["onnx"])


def run(args: argparse.Namespace) -> str:
    load_at_start = load_average()
    models = model_dir(Path(tempfile.mkdtemp(prefix="facerec-bench-load-")) / "models")
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    imported: dict[str, bool] = {}
    for round_no in range(args.warmup + args.rounds):
        for way, flag in zip(WAYS, ("before", "now"), strict=True):
            elapsed, onnx_loaded = load_once(models, flag)
            imported[way] = onnx_loaded
            if round_no >= args.warmup:
                seconds[way].append(elapsed)
        print(f"round {round_no + 1} done", flush=True)
    before, now = (percentile(seconds[way], 50) for way in WAYS)
    lines = [
        f"A fresh interpreter importing facerec and loading {MODEL} (its graph's first "
        "dimension freed, then its onnxruntime session made), seconds p50 over "
        f"{args.rounds} rounds after {args.warmup} warm-up rounds, the two ways taken in turn. "
        f"Load average at the start: {load_at_start}.",
        "",
        "| way | seconds p50 | min | max | `onnx` imported |",
        "|---|---:|---:|---:|---|",
    ]
    for way in WAYS:
        values = seconds[way]
        lines.append(
            f"| {way} | {percentile(values, 50):.2f} | {min(values):.2f} | {max(values):.2f} | "
            f"{'yes' if imported[way] else 'no'} |"
        )
    lines += ["", f"Now / before: {now / before:.2f} ({before - now:.2f} s less per start)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS")
    args = parser.parse_args()
    body = run(args)
    print(body)
    if not args.no_write:
        write_section("model_load", f"Loading {MODEL} in a fresh process", body)


if __name__ == "__main__":
    main()
