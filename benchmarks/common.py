"""Shared by the benchmark programs (benchmarks/): the offline encoder they start from, the NTREX sentences they
decode, machine facts, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

from swcm.choices import DEFAULT_ENCODER

REPOSITORY = Path(__file__).resolve().parents[1]
"""The source checkout the benchmarks run from."""
SHARED_DATA = Path(os.environ.get("SWCM_SHARED_DATA", REPOSITORY.parent / "shared" / "data"))
"""The real data: `../shared/data` beside the checkout, or SWCM_SHARED_DATA."""
# The benchmark's languages: pruning keeps the pieces these files use (ug / kk / mn / zh).
PRUNE_CORPUS = [
    "mono/ug.essays.jsonl",
    "mono/kk.kazqad-contexts.jsonl",
    "mono/mn.montsame-news.jsonl",
    "mt/software-ui.en-zh-ug.jsonl",
    "mt/software-ui.en-zh-kk.jsonl",
    "mt/software-ui.en-zh-mn.jsonl",
]


def require_shared_data() -> Path:
    if not (SHARED_DATA / "README.md").is_file():
        raise SystemExit(f"benchmark data not found at {SHARED_DATA} (set SWCM_SHARED_DATA)")
    return SHARED_DATA


def benchmark_encoder(encoder: str = DEFAULT_ENCODER, prune: bool = True) -> str:
    """A local encoder directory: `encoder` itself, or (packaged / hub encoders) its vocabulary pruned to the
    benchmark corpus, built once and cached under the swcm cache."""
    from swcm.encoders import resolve_encoder
    from swcm.packaged import cache_root

    path = Path(encoder)
    if path.is_dir() and not prune:
        return str(path)
    resolved = resolve_encoder(encoder)
    if not prune:
        return resolved
    from swcm.vocab import prune_vocab

    data = require_shared_data()
    name = Path(resolved).name if Path(resolved).is_dir() else resolved.replace("/", "--")
    target = cache_root() / "benchmarks" / f"{name}-pruned-ug-kk-mn-zh"
    if not (target / "config.json").is_file():
        staging = target.with_name(target.name + f".tmp{os.getpid()}")
        report = prune_vocab(resolved, [data / f for f in PRUNE_CORPUS], staging)
        print(f"pruned {encoder}: {report['vocab_before']} -> {report['vocab_after']} pieces", flush=True)
        os.replace(staging, target)
    return str(target)


def ntrex_sentences(count: int) -> list[str]:
    """`count` NTREX dev zh sentences in file order (repeated past its end; a fixed line without the shared data):
    the one reader of the decoding benchmarks' inputs."""
    path = SHARED_DATA / "mt" / "ntrex128.dev.jsonl"
    if not path.is_file():
        return ["新闻 世界 你好 中文，今天的天气很好。"] * count
    lines = [json.loads(line)["zh"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return (lines * (count // len(lines) + 1))[:count]


def source_batch(tokenizer, size: int, max_length: int = 48) -> dict:
    """The first `size` NTREX sentences as one padded batch."""
    return tokenizer(ntrex_sentences(size), return_tensors="pt", padding=True, truncation=True, max_length=max_length)


def machine() -> dict:
    import torch

    info = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and "cpu_flags" not in info:
                flags = line.split(":", 1)[1].split()
                wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
                info["cpu_flags"] = [f for f in wanted if f in flags]
    from swcm.precision import cpu_has_fast_bf16

    # what torch dispatches to (ATEN_CPU_CAPABILITY can hold it below the flags) and whether bf16 is native
    info["cpu_bf16"] = cpu_has_fast_bf16()[1]
    return info


DECODING_MODES = {
    "fp32": ("fp32", "none"),
    "int8": ("fp32", "int8"),
    "fp16": ("fp32", "fp16"),
    "bf16": ("bf16", "none"),
}
"""Each way `swcm generate` decodes, as the (precision, quantize) it gives `prepare_for_inference`."""


def machine_line(info: dict) -> str:
    """The one line every report opens with: when, on which CPU (its flags) and threads, with which torch."""
    flags = ", ".join(info.get("cpu_flags", [])) or "none listed"
    return f"{info['date']} · {info['cpu']} (CPU flags: {flags}) · {info['threads']} threads · torch {info['torch']}"


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def mean_sd(values: list[float], digits: int = 2) -> str:
    """`mean ± sd` of a result over seeds (one value: itself; none: empty)."""
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def in_fresh_process(module: str, call: str) -> dict:
    """`benchmarks.<module>.<call>` (a call returning a JSON-able value) in a new Python process, so that the peak
    memory it measures holds only what that call allocated; its result."""
    import subprocess
    import sys

    code = f"import json; from benchmarks import {module} as m; print('RESULT', json.dumps(m.{call}))"
    # glibc would keep freed buffers (its mmap threshold adapts upwards) and hide a later peak: a fixed threshold
    # maps every large buffer and unmaps it on free, so RSS follows live memory
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPOSITORY)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"{module}.{call} failed in its own process:\n{done.stderr[-2000:]}")
    return json.loads(line[len("RESULT ") :])


def write_report(out: Path, name: str, result: dict, markdown: str) -> None:
    """A benchmark's results: NAME.json (the raw rows) and NAME.md, each replaced whole."""
    write_json(Path(out) / f"{name}.json", result)
    staging = Path(out) / f"{name}.md.tmp"
    staging.write_text(markdown, encoding="utf-8")
    os.replace(staging, Path(out) / f"{name}.md")


def run_as_program(args_class: type, run, report: str, doc: str | None, argv: list[str] | None = None) -> int:
    """A benchmark's `main`: its arguments parsed as swcm's commands are, `run(args)`, then its markdown printed."""
    from swcm.cli import parse_dataclass

    args = parse_dataclass(args_class, argv, doc)
    run(args)
    print((Path(args.out) / report).read_text(encoding="utf-8"))
    return 0
