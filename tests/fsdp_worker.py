"""Run by tests/test_training.py under `torch.distributed.run` (2 CPU processes, gloo): XLM-SWCM sharded with torch's
FSDP2 (`fully_shard`, FULL_SHARD; wrap units: every encoder and decoder layer, then the whole model, as
configs/accelerate/fsdp.yaml asks accelerate to) trains three steps of training's (fused) AdamW on its half of each
batch; rank 0 also trains an unsharded copy on the whole batch. Prints, as JSON, both runs' losses and the largest
difference between the full state dicts after training."""

import json
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard

from swcm import from_encoder
from swcm.training import adamw, fsdp_wrap_classes


def token_loss_sum(model, batch) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).logits
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["labels"], reduction="sum")


def main(encoder: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = from_encoder(encoder)
    reference = from_encoder(encoder) if rank == 0 else None  # the same weights (the same seed before each build)
    if reference is not None:
        reference.load_state_dict(model.state_dict())
    for module in list(model.modules()):
        if type(module).__name__ in fsdp_wrap_classes(model):
            fully_shard(module)
    fully_shard(model)
    cpu = torch.device("cpu")
    optimizer = adamw(model.parameters(), 1e-3, cpu)  # training's optimizer (fused) over sharded parameters
    reference_optimizer = adamw(reference.parameters(), 1e-3, cpu) if reference is not None else None
    generator = torch.Generator().manual_seed(1)
    losses, reference_losses = [], []
    for _ in range(3):
        ids = torch.randint(5, 60, (4, 7), generator=generator)
        labels = torch.randint(5, 60, (4, 5), generator=generator)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
        tokens = labels.numel()
        half = {k: v[rank * 2 : rank * 2 + 2] for k, v in batch.items()}
        model.train()
        local = token_loss_sum(model, half)
        (world * local / tokens).backward()  # FSDP averages gradients over the processes
        optimizer.step()
        optimizer.zero_grad()
        total = local.detach().clone()
        dist.all_reduce(total)
        losses.append(float(total) / tokens)
        if reference is not None:
            reference.train()
            loss = token_loss_sum(reference, batch) / tokens
            loss.backward()
            reference_optimizer.step()
            reference_optimizer.zero_grad()
            reference_losses.append(float(loss.detach()))
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        expected = reference.state_dict()
        largest = max(float((full[k].float() - expected[k].float()).abs().max()) for k in expected)
        missing = sorted(set(expected) - set(full))
        print(
            "FSDP "
            + json.dumps({"losses": losses, "reference": reference_losses, "largest": largest, "missing": missing})
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
