"""QLoRA: a model loaded quantised (bitsandbytes through AgentConfig.model_init_kwargs, TRL's
name) trains LoRA adapters, with the dequantised model's gradients; rollouts run the adapter;
a trial resumes from its checkpoint and its saved model loads back quantised; loading settings that would be dropped, or a quantised
model asked to train its own weights, fail before any trial."""

import dataclasses

import pytest
import torch

from helpers import tiny_spec
from stateset_hpo.grpo import AgentConfig
from stateset_hpo.grpo.agent import MultiTurnAgent, without_lora_layers
from stateset_hpo.hpo_trainer import load_trained_agent, save_trained_agent
from stateset_hpo.launch import main
from stateset_hpo.trial import run_trial

Q4 = {"quantization_config": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}}
PROMPT = torch.tensor([[5, 6, 7, 8, 9, 10]])


def quantised_spec(init_kwargs=Q4, **overrides):
    return dataclasses.replace(tiny_spec(**overrides), agent_config=AgentConfig(model_init_kwargs=init_kwargs))


def adapted_4bit_model():
    """The tiny model loaded in 4 bits with a LoRA adapter that is not zero (peft's test init)."""
    from peft import LoraConfig, get_peft_model

    agent = MultiTurnAgent(AgentConfig(model_init_kwargs=Q4)).initialize()
    torch.manual_seed(0)
    return agent, get_peft_model(agent.model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))


def dequantised(model):
    """``model`` with each 4-bit base layer replaced by a float Linear holding its dequantised weights."""
    import bitsandbytes as bnb

    for name, module in list(model.named_modules()):
        if isinstance(module, bnb.nn.Linear4bit):
            weight = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state).float()
            layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False).requires_grad_(False)
            layer.weight.data = weight
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, layer)
    return model


def lora_grads(model):
    model.zero_grad()
    model(PROMPT, labels=PROMPT).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


# (the 8-bit trial, 7 s, is slow-marked: the inner loop stays under 5 minutes; CI runs it)
@pytest.mark.parametrize("init_kwargs", [Q4, pytest.param({"quantization_config": {"load_in_8bit": True}},
                                                           marks=pytest.mark.slow)], ids=["4bit", "8bit"])
def test_a_quantised_trial_trains_its_adapter_resumes_and_saves_a_model_that_loads_back(tmp_path, init_kwargs):
    seen, saved = [], {}

    def first_two(metrics, trainer):
        seen.append(metrics)
        if metrics["iteration"] == 2:
            saved["folder"] = trainer.save_checkpoint(tmp_path / "ckpt")
            saved["lora"] = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if "lora_B" in n}
            saved["quantised"] = any(not p.is_floating_point() for p in trainer.policy.parameters())
            trainer.policy.eval()
            with torch.no_grad():
                saved["logits"] = trainer.policy(PROMPT).logits
            save_trained_agent(trainer, tmp_path / "best", {})  # what train_with_best_params writes
            return True

    run_trial(quantised_spec(init_kwargs, num_episodes=24, learning_rate=1e-3), {}, first_two)
    assert [m["iteration"] for m in seen] == [1.0, 2.0] and saved["quantised"]
    assert any(bool(b.abs().sum() > 0) for b in saved["lora"].values())  # the adapter (zero at init) trained
    loaded = load_trained_agent(str(tmp_path / "best")).model  # the base loads quantised again, with the adapter
    assert any(not p.is_floating_point() for p in loaded.parameters())
    with torch.no_grad():
        assert torch.allclose(loaded(PROMPT).logits, saved["logits"], atol=1e-4)
    resumed = []
    run_trial(quantised_spec(init_kwargs, num_episodes=24, learning_rate=1e-3), {},
              lambda metrics, trainer: resumed.append(metrics), restore_from=saved["folder"])
    assert [m["iteration"] for m in resumed] == [3.0]


def test_qlora_gradients_after_a_rollout_are_the_dequantised_models():
    # On a CPU with AVX512-BF16, bitsandbytes repacks 4-bit weights at their first eval-mode
    # forward and backward then runs through a kernel without a gradient (about 140% off here)
    agent, model = adapted_4bit_model()
    model.eval()
    with torch.no_grad():
        model(PROMPT)  # a rollout
    model.train()
    got = lora_grads(model)
    want = lora_grads(dequantised(model))
    for name, grad in want.items():
        assert torch.allclose(got[name], grad, rtol=1e-4, atol=1e-6), name


def test_rollouts_of_a_quantised_model_run_its_adapter_and_the_reference_does_not():
    agent, model = adapted_4bit_model()
    model.eval()
    with torch.no_grad():
        adapted = model(PROMPT).logits
        with without_lora_layers(model, merge=True):
            policy = model(PROMPT).logits
        with without_lora_layers(model, merge=False):
            reference = model(PROMPT).logits
        with model.disable_adapter():
            base = model(PROMPT).logits
    assert torch.allclose(policy, adapted) and torch.allclose(reference, base)
    assert not torch.allclose(adapted, base, atol=1e-3)


@pytest.mark.parametrize("init_kwargs, message", [
    ({"load_in_4bit": True}, "model_init_kwargs.load_in_4bit is not passed to from_pretrained"),
    ({"dtype": "bfloat16"}, "the agent sets it from AgentConfig.dtype"),
    ({"device_map": "auto"}, "the agent sets it from AgentConfig.device"),
    ({"attn_implementation": 3}, "model_init_kwargs.attn_implementation must be a non-empty string"),
    ({"quantization_config": {"load_in_4bit": True, "load_in_8bit": True}}, "exactly one of load_in_4bit"),
    ({"quantization_config": {"quant_method": "gptq", "bits": 4}}, "only bitsandbytes loading is supported"),
    ({"quantization_config": {"load_in_4bit": True, "bnb_4bit_quant_typ": "nf4"}}, "'bnb_4bit_quant_typ' is no"),
    ({"quantization_config": {"load_in_4bit": True, "bnb_4bit_quant_type": "int4"}}, "must be one of fp4, nf4"),
    ({"quantization_config": {"load_in_4bit": True, "bnb_4bit_use_double_quant": "yes"}}, "bnb_4bit_use_double_quant"),
    ("4bit", "must be a mapping"),
])
def test_loading_settings_that_would_be_dropped_or_are_wrong_are_refused(init_kwargs, message):
    with pytest.raises(ValueError, match=message):
        AgentConfig(model_init_kwargs=init_kwargs)


def test_a_transformers_quantisation_config_is_kept_as_its_settings():
    from transformers import BitsAndBytesConfig

    config = AgentConfig(model_init_kwargs={"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4")})
    settings = config.model_init_kwargs["quantization_config"]
    assert settings["load_in_4bit"] is True and settings["bnb_4bit_quant_type"] == "nf4"
    assert settings["bnb_4bit_compute_dtype"] == "bfloat16"  # a name: the agent config stays JSON


@pytest.mark.parametrize("extra", [["--set", "use_lora=false"],
                                   ["--space-file", "lora.yaml"]], ids=["full-fine-tuning", "a-space-with-it"])
def test_a_quantised_model_that_would_train_its_own_weights_is_one_line_before_any_trial(tmp_path, capsys,
                                                                                          monkeypatch, extra):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lora.yaml").write_text("use_lora: {type: categorical, choices: [true, false], default: true}\n")
    code = main(["--backend", "optuna", "--set", "model_init_kwargs={quantization_config: {load_in_4bit: true}}",
                 *extra, "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "trials must train LoRA adapters" in err and err.count("\n") == 1, err
