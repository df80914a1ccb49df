"""Policy loading: configs, the tiny test model, local folders, errors, LoRA; slow: the real GGUF."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from recgen.errors import ConfigError, ModelNotFoundError
from recgen.policy.models import (
    CONVERSION_MARKER,
    INSTALL_HINT,
    LoraConfig,
    PolicyConfig,
    build_tiny_policy,
    load_policy,
    resolve_model,
)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"rank": 0}, "rank"),
        ({"alpha": 0}, "alpha"),
        ({"dropout": 1.0}, "dropout"),
        ({"target_modules": ()}, "target_modules"),
    ],
)
def test_lora_config_rejects_nonsense(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        LoraConfig(**kwargs)


def test_lora_config_accepts_a_single_module_name():
    assert LoraConfig(target_modules="q_proj").target_modules == ("q_proj",)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"dtype": "fp16"}, "dtype"), ({"threads": 0}, "threads"), ({"model": ""}, "model")],
)
def test_policy_config_rejects_nonsense(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        PolicyConfig(**kwargs)


def test_tiny_policy(tiny_policy):
    cfg = tiny_policy.model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers) == (64, 2)
    assert 2_000_000 < tiny_policy.num_parameters() < 5_000_000  # mostly the 49k x 64 embedding
    tok = tiny_policy.tokenizer
    assert tok.pad_token_id is not None and tok.padding_side == "left"
    assert cfg.vocab_size == len(tok)
    assert tiny_policy.dtype == torch.float32 and not tiny_policy.model.training


def test_tiny_policy_is_seeded(smollm2_tokenizer, tiny_policy):
    again = build_tiny_policy(seed=0, tokenizer=smollm2_tokenizer)
    other = build_tiny_policy(seed=1, tokenizer=smollm2_tokenizer)
    w0 = tiny_policy.model.model.embed_tokens.weight
    assert torch.equal(w0, again.model.model.embed_tokens.weight)
    assert not torch.equal(w0, other.model.model.embed_tokens.weight)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, tiny_policy):
    folder = tmp_path_factory.mktemp("tiny_model")
    tiny_policy.model.save_pretrained(folder)
    tiny_policy.tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("dtype, torch_dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_load_local_folder(tiny_folder, tiny_policy, dtype, torch_dtype):
    policy = load_policy(str(tiny_folder), dtype=dtype, threads=1)
    assert policy.dtype == torch_dtype and policy.name == str(tiny_folder)
    assert policy.tokenizer.padding_side == "left"
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        got = policy.model(input_ids=ids).logits.float()
        want = tiny_policy.model(input_ids=ids).logits
    tol = 1e-5 if dtype == "fp32" else 5e-2
    assert torch.allclose(got, want, atol=tol)
    assert all(p.requires_grad for p in policy.model.parameters())  # full fine-tuning


def test_load_with_lora_trains_only_adapters(tiny_folder):
    policy = load_policy(str(tiny_folder), dtype="fp32", lora=LoraConfig(rank=4, alpha=8))
    assert policy.is_lora
    trainable = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert policy.num_parameters(trainable_only=True) < policy.num_parameters() / 10


def test_lora_with_unknown_targets_is_a_config_error(tiny_folder):
    with pytest.raises(ConfigError, match="target_modules"):
        load_policy(str(tiny_folder), dtype="fp32", lora=LoraConfig(target_modules=("nope",)))


def test_missing_folder_says_how_to_install_default(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist") as err:
        load_policy(str(tmp_path / "no_such_model"))
    assert INSTALL_HINT in str(err.value)


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_model(str(tmp_path))


def test_unknown_hub_id_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError) as err:
        load_policy("recgen-test/definitely-not-a-cached-model")
    msg = str(err.value)
    assert "recgen-test/definitely-not-a-cached-model" in msg and INSTALL_HINT in msg


def test_missing_gguf_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="GGUF"):
        resolve_model(str(tmp_path / "model.gguf"))


@pytest.mark.slow
def test_default_model_conversion_is_cached_and_sensible(tmp_path, caplog):
    """Real SmolLM2-135M: converted once (logits == GGUF's), reused, writes sensible text."""
    caplog.set_level(logging.INFO, logger="recgen.policy.models")
    first = load_policy(cache_dir=tmp_path, dtype="fp32")
    assert "converting" in caplog.text
    folders = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1
    marker = json.loads((folders[0] / CONVERSION_MARKER).read_text())
    assert marker["max_logit_diff_vs_gguf"] <= 1e-4
    mtime = (folders[0] / "model.safetensors").stat().st_mtime_ns

    caplog.clear()
    second = load_policy(cache_dir=tmp_path, dtype="bf16")
    assert "converting" not in caplog.text and "from cache" in caplog.text
    assert (folders[0] / "model.safetensors").stat().st_mtime_ns == mtime

    tok = second.tokenizer
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = torch.tensor([tok(text, add_special_tokens=False).input_ids])
    with torch.inference_mode():
        out = first.model.generate(input_ids=ids, max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
