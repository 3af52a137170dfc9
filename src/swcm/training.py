"""The pretraining stage on accelerate: the same code runs under `python -m`, `torchrun` and `accelerate launch`
(DDP, FSDP or DeepSpeed come from the launcher's configuration). AdamW, linear schedule with warmup, gradient
clipping, accumulation up to the global batch, bf16 / fp16 autocast.

Checkpoints (checkpointing.py) exist whole or not at all. `resume` takes the newest checkpoint whose manifest
verifies and restores model, optimizer, scheduler, RNG and the data position (the micro-batch index), so a killed and
resumed run follows the loss curve of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType, TorchDynamoPlugin
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup
from transformers.modeling_layers import GradientCheckpointingLayer

from .build import from_encoder
from .checkpointing import TRAINER_STATE, latest_good_checkpoint, save_checkpoint
from .data import ExampleSettings, MicroBatchStream, PretrainExamples, build_mixture, open_source
from .encoders import first_decoder_position_id
from .errors import DataError, TrainingInterrupted
from .evaluation import recipe_heldout_evaluator
from .folders import hold_run_folder, restore_set_aside, set_aside, write_atomically
from .modeling_swcm import load_model_folder
from .paths import check_model_dir, check_output_folder, local_model_type
from .precision import resolve_precision
from .recipe import FinetuneRecipe, PretrainRecipe
from .tasks import FinetuneExamples, finetune_items

# ------------------------------------------------------------------------------------------------------ setup


def pruned_encoder(encoder: str, corpus: list[str], out: Path, accelerator: Accelerator) -> str:
    """`encoder` with its vocabulary pruned to the corpus, made once by the main process in `out/encoder-pruned`."""
    from .encoders import resolve_encoder
    from .vocab import prune_vocab

    pruned = out / "encoder-pruned"
    if accelerator.is_main_process and not (pruned / "config.json").is_file():
        prune_vocab(resolve_encoder(encoder), corpus, pruned)
    accelerator.wait_for_everyone()
    return str(pruned)


def build_model(recipe: PretrainRecipe, corpus: list[str], out: Path, accelerator: Accelerator):
    """An existing XLM-SWCM directory, or one built from the recipe's encoder (optionally vocabulary-pruned)."""
    torch.manual_seed(recipe.seed)  # every process builds the same random parts; dropout follows the seed on every path
    path = Path(recipe.model).expanduser()
    if local_model_type(path) == "swcm":
        check_model_dir(path, "model")
        model, tokenizer = load_model_folder(path), AutoTokenizer.from_pretrained(path)
    else:
        encoder = pruned_encoder(recipe.model, corpus, out, accelerator) if recipe.prune_vocab else recipe.model
        torch.manual_seed(recipe.seed)  # pruning drew nothing, but keep the build independent of what ran before
        options = recipe.from_encoder_options()
        model, tokenizer = from_encoder(encoder, **options, return_tokenizer=True)
    positions = model.config.encoder.max_position_embeddings - first_decoder_position_id(model.config.encoder)
    if recipe.max_length > positions:  # caught here, not as an index error mid-training
        raise DataError(f"max_length: {recipe.max_length} is over the model's {positions} positions")
    return model, tokenizer


def fsdp_wrap_classes(model) -> set[str]:
    """The layer classes FSDP shards one at a time (configs/accelerate/fsdp.yaml names them for accelerate): the
    decoder's, and the encoder's (XLM-R or BERT family)."""
    return {type(m).__name__ for m in model.modules() if isinstance(m, GradientCheckpointingLayer)}


def recompute_layers(model) -> None:
    """Gradient (activation) checkpointing of every encoder and decoder layer, non-reentrant (torch's recommended
    form; dropout masks are replayed). transformers names it activation_checkpointing_enable from 5.25 on."""
    options = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse rather than hand it back to the OS (process-wide; True if
    it was set). A CPU training step frees and re-allocates the same large activations every step; by default glibc
    returns blocks over its mmap / trim thresholds to the OS, and each step pays for faulting the pages back in:
    measured ~400,000 page faults and 8% of an fp32 step of the speed benchmark's swcm (2.83 -> 2.60 s, Xeon, 2
    threads). The process then holds its peak memory between steps, which training reaches every step anyway."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h; both values are ints, so at most 2 GiB - 1
    return bool(mallopt(m_mmap_threshold, 2**30)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def adamw(parameters, lr: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel where it has one (CPU, CUDA): one pass over all parameters instead of a
    Python loop over them (measured: 0.23 -> 0.06 s of a 2.6 s CPU step). Elsewhere torch's default."""
    return torch.optim.AdamW(parameters, lr=lr, fused=True if device.type in ("cpu", "cuda") else None)


def measure_data_throughput(examples: PretrainExamples, count: int = 64) -> float:
    """Examples per second that one worker tokenises and noises."""
    started = time.perf_counter()
    for i in range(count):
        examples.example(10**9 + i)  # indices far from training's, so nothing is cached
    return count / (time.perf_counter() - started)


def plot_losses(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    keys = ["loss"] + sorted({k for r in rows for k in r if k.startswith("loss_")})
    for key in keys:
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), label="total" if key == "loss" else key[len("loss_") :])
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per token")
    ax.set_title("XLM-SWCM training")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)", stacklevel=2)
        return None
    return SummaryWriter(str(folder))


# ------------------------------------------------------------------------------------------------------- loop


def pretrain(
    recipe: PretrainRecipe, resume: bool = False, stop_after: int | None = None, evaluate=None, overwrite: bool = False
) -> dict:
    """Run (or resume) pretraining; returns a summary. `stop_after` ends the run early after that step (tests);
    `evaluate` is run_training's hook (default: the recipe's held-out files)."""
    evaluate = evaluate or recipe_heldout_evaluator(recipe)

    def prepare(accelerator: Accelerator, out: Path):
        sources = [open_source(spec, recipe.skip_bad_lines, out / "index") for spec in recipe.sources]
        skipped = {s.spec.path: s.skipped for s in sources if s.skipped}
        if skipped and accelerator.is_main_process:
            print(f"skipped malformed or empty lines: {skipped}", flush=True)
        mixture = build_mixture(sources, recipe.alpha, recipe.mt_share, recipe.tasks)
        total_steps = recipe.total_steps(sum(s.rows for s in sources if s.spec.task in recipe.tasks))
        corpus = [s.spec.path for s in sources if not s.spec.path.startswith("hf:")]
        model, tokenizer = build_model(recipe, corpus, out, accelerator)
        settings = ExampleSettings(max_length=recipe.max_length, noise=recipe.noise, seed=recipe.seed)
        examples = PretrainExamples(sources, mixture, tokenizer, model.config.lang_tag_ids, settings)
        return model, tokenizer, examples, total_steps, f"mixture: {mixture.describe()}"

    return run_training(recipe, prepare, resume, stop_after, evaluate, overwrite)


def finetune(
    recipe: FinetuneRecipe, resume: bool = False, stop_after: int | None = None, evaluate=None, overwrite: bool = False
) -> dict:
    """Fine-tune on task files (translation both ways, summarisation, reading comprehension) with the same loop;
    `evaluate` as in pretrain."""
    evaluate = evaluate or recipe_heldout_evaluator(recipe)

    def prepare(accelerator: Accelerator, out: Path):
        model, tokenizer = build_model(recipe, [f.path for f in recipe.train], out, accelerator)
        items, notes = finetune_items(recipe.train, tokenizer, recipe.max_length, recipe.skip_bad_lines)
        examples = FinetuneExamples(items, tokenizer, model.config.lang_tag_ids, recipe.max_length, recipe.seed)
        return model, tokenizer, examples, recipe.total_steps(len(items)), "; ".join(notes)

    return run_training(recipe, prepare, resume, stop_after, evaluate, overwrite)


def parameter_groups(model: torch.nn.Module, recipe) -> list[dict]:
    """AdamW groups: no weight decay on norms, biases and gates; the encoder (`model.get_encoder()`, which holds the
    shared embeddings) at `recipe.encoder_lr` when a recipe sets one, and frozen at 0, so that a freshly started
    decoder can learn fast without wrecking what the pretrained encoder knows; the decoder's sublayer gates
    (`*_gate`) at `recipe.gate_lr_scale` x lr."""
    encoder_lr = getattr(recipe, "encoder_lr", None)  # recipes without the fields (adapt) train one module
    gate_lr = recipe.lr * getattr(recipe, "gate_lr_scale", 1.0)
    encoder = {id(p) for p in model.get_encoder().parameters()} if encoder_lr is not None else set()
    groups: dict[tuple[str, bool], list] = {}
    for name, param in model.named_parameters():
        part = "encoder" if id(param) in encoder else "gate" if name.endswith("_gate") else "rest"
        if part == "encoder" and encoder_lr == 0:
            param.requires_grad_(False)
            continue
        decays = not (param.ndim < 2 or "layer_norm" in name or "LayerNorm" in name)
        groups.setdefault((part, decays), []).append(param)
    rates = {"rest": recipe.lr, "gate": gate_lr, "encoder": encoder_lr}  # the first group's rate is the one logged
    order = list(rates)
    return [
        {"params": params, "weight_decay": recipe.weight_decay if decays else 0.0, "lr": rates[part]}
        for (part, decays), params in sorted(groups.items(), key=lambda item: (order.index(item[0][0]), item[0][1]))
    ]


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_requests():
    """A list that SIGINT / SIGTERM append their number to, for the loop to read after each optimizer step; a second
    signal stops at once. Outside the main thread (no signal handlers there) the list stays empty."""
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum, frame):
        if requested:
            print(f"\n{signal.Signals(signum).name} again: stopping now, without a checkpoint", file=sys.stderr)
            raise SystemExit(128 + signum)
        requested.append(signum)
        print(
            f"\n{signal.Signals(signum).name}: finishing this step and writing a checkpoint (again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield requested
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _any_process(accelerator: Accelerator, flag: bool) -> bool:
    """Whether `flag` is set on any process (no collective with one process)."""
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.reduce(torch.tensor(float(flag), device=accelerator.device), reduction="sum") > 0)


def _ignore_stop_signals(worker_id: int) -> None:
    # Ctrl-C reaches the whole process group: data workers keep serving until the main process has saved
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


# what may change between a run and its resumption (the rest would make it another run)
RESUMABLE_CHANGES = ("out", "num_workers", "save_every", "keep_checkpoints", "log_every", "skip_bad_lines")
# what marks a folder as holding a run
RUN_MARKS = ("log.jsonl", "checkpoints", "final")
# everything a run writes into its out folder: --overwrite removes these and nothing else (a user's files stay)
RUN_OUTPUTS = (
    *RUN_MARKS,
    "recipe.json",
    "initial",
    "tb",
    "loss.png",
    "report.json",
    "encoder-pruned",
    "index",
)


def _recipe_json(recipe) -> dict:
    return json.loads(json.dumps(asdict(recipe), default=str))


def check_out_folder(out: Path, recipe, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a folder that holds another run, unless resuming it (with the same recipe) or
    overwriting it; the check runs before anything is written."""
    marks = [name for name in RUN_MARKS if (out / name).exists()]
    if resume and overwrite:
        raise DataError("--resume continues the run in out, --overwrite deletes it: choose one")
    if resume:
        saved = out / "recipe.json"
        if not saved.is_file():
            raise DataError(f"--resume: {out} holds no run (no recipe.json)")
        before, now = json.loads(saved.read_text(encoding="utf-8")), _recipe_json(recipe)
        changed = [
            f"{key}: {before.get(key)!r} -> {now.get(key)!r}"
            for key in sorted(set(before) | set(now))
            if key not in RESUMABLE_CHANGES and before.get(key) != now.get(key)
        ]
        if changed:
            raise DataError(
                f"--resume: the recipe differs from the run's ({out / 'recipe.json'}): {'; '.join(changed)}"
            )
    elif marks and not overwrite:
        raise DataError(
            f"{out} already holds a run ({', '.join(marks)}); --resume continues it, --overwrite deletes it and "
            "starts again, or choose another out"
        )


def run_training(
    recipe: PretrainRecipe,
    prepare,
    resume: bool = False,
    stop_after: int | None = None,
    evaluate=None,
    overwrite: bool = False,
) -> dict:
    """The shared loop: `prepare(accelerator, out)` gives (model, tokenizer, examples, total steps, description);
    examples must make example i deterministically from i (see data.MicroBatchStream). `evaluate(model, tokenizer,
    step, total_steps)`, if given, runs on the main process at every log step and its dict joins the log row (e.g.
    held-out losses: evaluation.heldout_evaluator). The run holds its out folder throughout (hold_run_folder)."""
    out = Path(recipe.out)
    check_output_folder(out)
    check_out_folder(out, recipe, resume, overwrite)  # before the lock: a refused run leaves no folder behind
    with hold_run_folder(out) as created:
        try:
            return _train(recipe, prepare, out, resume, stop_after, evaluate, overwrite, created)
        finally:
            if _world() == 1:
                # accelerate keeps one state per process and refuses an Accelerator with other settings (another
                # precision) later in the same process: a library caller's second run starts from a clean one
                AcceleratorState._reset_state(reset_partial_state=True)


def _train(recipe, prepare, out, resume, stop_after, evaluate, overwrite, created: bool) -> dict:
    precision = resolve_precision(recipe.mixed_precision)
    compiling = {}
    if recipe.compile:  # regional: each repeated layer compiled once, not the whole model
        compiling["dynamo_plugin"] = TorchDynamoPlugin(backend="inductor", use_regional_compilation=True, dynamic=True)
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # without it, CPU processes under torchrun would not form a group
        mixed_precision=precision.accelerate,
        gradient_accumulation_steps=recipe.accumulation(_world()),
        **compiling,
    )
    if accelerator.device.type == "cpu":
        keep_freed_memory()
    world, rank = accelerator.num_processes, accelerator.process_index
    if world != _world():
        raise DataError(f"the launcher started {_world()} processes but accelerate formed a group of {world}")
    accumulation = recipe.accumulation(world)
    main = accelerator.is_main_process
    aside = None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        aside = set_aside(out, RUN_OUTPUTS) if overwrite else None
    accelerator.wait_for_everyone()
    try:
        model, tokenizer, examples, total_steps, description = prepare(accelerator, out)
    except BaseException:
        if aside is not None:
            restore_set_aside(aside, out)
        elif created and main:  # a failed start leaves no half-made run (hold_run_folder removes the empty folder)
            for name in RUN_OUTPUTS:
                path = out / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        raise
    if main:  # only once start-up has worked: a failed start leaves an earlier run's recipe as it was
        write_atomically(out / "recipe.json", json.dumps(_recipe_json(recipe), indent=1))
        if aside is not None:
            shutil.rmtree(aside)
    task_names = examples.task_names
    if main and not (out / "initial").exists():  # the starting point, for before / after comparisons
        model.save_pretrained(out / "initial")
        tokenizer.save_pretrained(out / "initial")
    data_rate = measure_data_throughput(examples)

    if recipe.gradient_checkpointing:
        recompute_layers(model)
    optimizer = adamw(parameter_groups(model, recipe), recipe.lr, accelerator.device)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(recipe.warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    sharded = accelerator.distributed_type == DistributedType.FSDP
    accelerator.register_for_checkpointing(scheduler)  # stepped by us once per optimizer step, saved with the state

    step = 0
    log_path = out / "log.jsonl"
    if resume:
        checkpoint, problems = latest_good_checkpoint(out / "checkpoints")
        for problem in problems:
            if main:
                warnings.warn(problem, stacklevel=2)
        if checkpoint is None:
            raise DataError(f"--resume: no usable checkpoint in {out / 'checkpoints'}")
        accelerator.load_state(str(checkpoint))
        step = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))["step"]
        if main and log_path.is_file():  # drop log lines past the checkpoint: they will be recomputed
            kept = [r for r in log_path.read_text(encoding="utf-8").splitlines() if r and json.loads(r)["step"] <= step]
            log_path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        if main:
            print(f"resumed from {checkpoint} at step {step}", flush=True)
    elif main and log_path.exists():
        log_path.unlink()

    stream = MicroBatchStream(
        examples, recipe.micro_batch, rank, world, step * accumulation * world, tokenizer.pad_token_id
    )
    loader = DataLoader(
        stream,
        batch_size=None,
        num_workers=recipe.num_workers,
        generator=torch.Generator().manual_seed(recipe.seed),  # the loader must not draw from the global RNG
        prefetch_factor=4 if recipe.num_workers else None,
        worker_init_fn=_ignore_stop_signals,
    )
    writer = _tensorboard(out / "tb") if main else None
    if main:
        print(f"precision {precision.precision}: {precision.reason}", flush=True)
        print(
            f"training {total_steps} steps x {recipe.global_batch} sequences ({world} process(es) x "
            f"{recipe.micro_batch} x {accumulation} accumulation); {description}; "
            f"data pipeline {data_rate:.0f} examples/s per worker x {max(1, recipe.num_workers)} worker(s)",
            flush=True,
        )
    bar = tqdm(total=total_steps, initial=step, desc="training", unit=" step", disable=not main)
    unwrapped = accelerator.unwrap_model(model)
    model.train()
    sums = torch.zeros(2 + 2 * len(task_names), device=accelerator.device)  # loss, micro-batches, per-task sum / count
    tokens = torch.zeros((), device=accelerator.device)
    started = last_log = time.perf_counter()
    stop = min(total_steps, stop_after) if stop_after else total_steps
    with stop_requests() as requested:
        for batch in loader:
            if step >= stop:
                break
            labels = batch["labels"].to(accelerator.device)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    token_loss = _token_losses(model, unwrapped, batch, labels, accelerator.device)
                mask = labels != -100
                loss = token_loss.sum() / mask.sum()
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                sums[0] += loss.detach()
                sums[1] += 1
                per_example = (token_loss * mask).sum(1)
                task = batch["task"].to(accelerator.device)
                for t in range(len(task_names)):
                    chosen = task == t
                    sums[2 + 2 * t] += per_example[chosen].sum()
                    sums[3 + 2 * t] += mask[chosen].sum()
                tokens += batch["attention_mask"].sum().to(accelerator.device) + mask.sum()  # read at log time only
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step += 1
            bar.update(1)
            if step % recipe.log_every == 0 or step == stop:
                totals = accelerator.reduce(sums, reduction="sum")
                now = time.perf_counter()
                row = {
                    "step": step,
                    "loss": float(totals[0] / totals[1]),
                    "lr": scheduler.get_last_lr()[0],
                    "tokens_per_s": float(tokens) * world / (now - last_log),
                    "examples_per_s": recipe.global_batch * recipe.log_every / (now - last_log),
                }
                for t, task in enumerate(task_names):
                    count = float(totals[3 + 2 * t])
                    row[f"loss_{task}"] = float(totals[2 + 2 * t]) / count if count else None
                sums.zero_()
                tokens.zero_()
                if evaluate is not None and (main or sharded):  # a sharded model's forward needs every process
                    with accelerator.autocast():
                        row.update(evaluate(model if sharded else unwrapped, tokenizer, step, total_steps))
                last_log = time.perf_counter()
                if main:
                    with log_path.open("a", encoding="utf-8") as handle:
                        handle.write(json.dumps(row) + "\n")
                    if writer is not None:
                        for key, value in row.items():
                            if key != "step" and value is not None:
                                writer.add_scalar(f"pretrain/{key}", value, step)
                    bar.set_postfix(
                        loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.1e}", tok_s=f"{row['tokens_per_s']:.0f}"
                    )
            stopping = _any_process(accelerator, bool(requested))
            if stopping or step % recipe.save_every == 0 or step == total_steps:
                checkpoint = save_checkpoint(
                    accelerator, out / "checkpoints", step, {"step": step}, recipe.keep_checkpoints
                )
            if stopping:
                bar.close()
                raise TrainingInterrupted(requested[0] if requested else signal.SIGTERM, step, checkpoint)
    bar.close()
    if writer is not None:
        writer.close()
    summary = {"steps": step, "total_steps": total_steps, "seconds": time.perf_counter() - started}
    summary["data_examples_per_s_per_worker"] = data_rate
    if step >= total_steps:
        accelerator.wait_for_everyone()
        state = accelerator.get_state_dict(model) if sharded else None  # FSDP: every process gives its shards
        if main:
            unwrapped.training_record = training_record(recipe, step, precision.precision, summary["seconds"])
            unwrapped.save_pretrained(out / "final", state_dict=state)
            tokenizer.save_pretrained(out / "final")
            plot_losses(log_path, out / "loss.png")
    return summary


def training_record(recipe, steps: int, precision: str, seconds: float) -> dict:
    """One training stage as the model card states it."""
    files = [s.path for s in getattr(recipe, "sources", None) or getattr(recipe, "train", None) or []]
    rates = f"peak lr {recipe.lr:g}"
    if getattr(recipe, "encoder_lr", None) is not None:
        rates += f", encoder {recipe.encoder_lr:g}"
    tasks = getattr(recipe, "tasks", None) or sorted({f.task for f in getattr(recipe, "train", [])})
    return {
        "stage": {"PretrainRecipe": "pretraining", "FinetuneRecipe": "fine-tuning"}.get(
            type(recipe).__name__, "continued masked-LM pretraining"
        ),
        "tasks": ", ".join(tasks) if tasks else "masked LM",
        "data": ", ".join(f"`{f}`" for f in files),
        "steps": f"{steps} x {recipe.global_batch} sequences of at most {recipe.max_length} tokens",
        "optimiser": f"AdamW, {rates}, {recipe.warmup_ratio:.0%} warm-up, linear decay, weight decay "
        f"{recipe.weight_decay:g}",
        "precision": precision,
        "seed": recipe.seed,
        "time": f"{seconds / 60:.1f} min",
    }


def _token_losses(model, unwrapped, batch: dict, labels: torch.Tensor, device) -> torch.Tensor:
    """Cross-entropy at every label position [batch, length] (0 where labels are -100). A model that computes its own
    (adapt's masked LM, which projects only the masked positions) says so with `returns_token_losses`."""
    input_ids = batch["input_ids"].to(device)
    attention_mask = batch["attention_mask"].to(device)
    if getattr(unwrapped, "returns_token_losses", False):
        return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        decoder_input_ids=unwrapped.prepare_decoder_input_ids_from_labels(labels),
        use_cache=False,
    ).logits
    return F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")


def _world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))
