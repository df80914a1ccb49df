"""Supervised warm start with TRL's SFTTrainer.

The target of each example (FGRPO.md, baseline 4): a slate that holds the target plus the
retriever's best other candidates, and a ranking with the target first. The loss is on the
completion only (TRL's prompt-completion format), so the prompt is context, not a target.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from recgen.examples import Example, format_output, sft_target_positions
from recgen.train.config import TrainConfig

logger = logging.getLogger(__name__)


def sft_records(examples: list[Example], cfg: TrainConfig) -> list[dict[str, str]]:
    """Prompt-completion pairs in TRL's format (the prompt already carries the chat template)."""
    out = []
    for ex in examples:
        slate, ranking = sft_target_positions(ex, cfg.slate_size, cfg.rank_size)
        out.append({"prompt": ex.prompt_text, "completion": format_output(slate, ranking)})
    return out


def train_sft(policy, examples: list[Example], cfg: TrainConfig, out_dir: Path, *,
              resume: bool = False) -> list[dict[str, Any]]:
    """Fine-tune ``policy.model`` in place for ``cfg.steps`` steps; returns the loss log."""
    import torch
    from datasets import Dataset as HFDataset
    from trl import SFTConfig, SFTTrainer

    ckpt_dir = Path(out_dir) / "checkpoints"
    args = SFTConfig(
        output_dir=str(ckpt_dir),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.sft_batch_size,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant_with_warmup" if cfg.warmup_steps else "constant",
        warmup_steps=cfg.warmup_steps,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.checkpoint_every,
        save_total_limit=cfg.keep_checkpoints,
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        completion_only_loss=True,
        max_length=None,
        bf16=False,  # weights are already in the policy's dtype; no autocast
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        disable_tqdm=False,
    )
    train_ds = HFDataset.from_list(sft_records(examples, cfg))
    trainer = SFTTrainer(model=policy.model, args=args, train_dataset=train_ds, processing_class=policy.tokenizer)
    has_ckpt = ckpt_dir.is_dir() and any(p.name.startswith("checkpoint-") for p in ckpt_dir.iterdir())
    trainer.train(resume_from_checkpoint=True if (resume and has_ckpt) else None)
    log = [h for h in trainer.state.log_history if "loss" in h]
    policy.model = trainer.model
    return log
