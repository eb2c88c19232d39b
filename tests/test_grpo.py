"""GRPO on the tiny offline model: a few steps with the negative L1 reward, whose values are checked
against hand-computed ones (unparseable completions included)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from depthlm_hf.models.tiny import tiny_tokenizer
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.scripts import grpo
from depthlm_hf.training.configs import GRPO_SYSTEM_PROMPT
from depthlm_hf.training.rewards import AnswerReward, FormatReward, build_rewards
from depthlm_hf.training.setup import check_vllm

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "grpo" / "config_synthetic.yaml"


class Recording:
    """Wraps a reward and keeps what it saw and returned."""

    def __init__(self, inner):
        self.inner, self.__name__, self.calls = inner, inner.__name__, []

    def __call__(self, completions, **columns):
        rewards = self.inner(completions, **columns)
        self.calls.append((completions, list(columns["depth"]), rewards))
        return rewards


def _digits_only_generation() -> str:
    """generation_kwargs letting the random model emit only a few digits, punctuation that never joins a
    number, spaces and the end of turn: completions are then integers or nothing parseable (both needed)."""
    tokenizer = tiny_tokenizer()
    allowed = {tokenizer.convert_tokens_to_ids(t) for t in [*"123?!()[]:;=", "Ġ", "<|im_end|>"]}
    suppress = sorted(set(range(len(tokenizer))) - allowed)
    return json.dumps({"suppress_tokens": suppress})


def test_grpo_negative_l1_rewards_equal_hand_computed(tmp_path, monkeypatch):
    recorded = []

    def recording_rewards(*args, **kwargs):
        rewards = [Recording(reward) for reward in build_rewards(*args, **kwargs)]
        recorded.extend(rewards)
        return rewards

    monkeypatch.setattr(grpo, "build_rewards", recording_rewards)
    out = tmp_path / "grpo"
    argv = ["--config", str(RECIPE), "--output_dir", str(out), "--synthetic_scenes", "8", "--max_steps", "3"]
    argv += ["--max_completion_length", "3", "--generation_kwargs", _digits_only_generation()]
    trainer = grpo.main(argv)

    assert trainer.state.global_step == 3
    (reward,) = recorded
    assert isinstance(reward.inner, AnswerReward) and reward.inner.metric == "l1"
    seen = {"parsed": 0, "unparseable": 0}
    for completions, depths, rewards in reward.calls:
        assert len(completions) == len(depths) == len(rewards) == 8
        for completion, depth, value in zip(completions, depths, rewards, strict=True):
            text = completion[0]["content"]
            number = re.search(r"\d+", text)
            # hand-computed: -|answer - label| [m], or the penalty -100 when there is no number
            expected = -abs(float(number.group()) - depth) if number else -100.0
            assert value == pytest.approx(expected), text
            seen["parsed" if number else "unparseable"] += 1
    assert seen["parsed"] > 0 and seen["unparseable"] > 0, seen
    logged = [entry["rewards/neg_l1/mean"] for entry in trainer.state.log_history if "rewards/neg_l1/mean" in entry]
    assert len(logged) == 3

    processor = DepthLMProcessor.from_pretrained(out)
    assert processor.system_prompt == GRPO_SYSTEM_PROMPT
    card = (out / "README.md").read_text()
    assert "GRPO (TRL `GRPOTrainer`)" in card and "| reward_funcs | ['neg_l1'] |" in card


def _grpo_args(*extra: str):
    return grpo.make_parser().parse_args_and_config(["--config", str(RECIPE), "--output_dir", "unused", *extra])


def test_reward_functions_follow_the_config():
    _, args, _ = _grpo_args("--reward_funcs", "neg_l1", "delta1", "format", "--unparseable_penalty", "-5")
    l1, d1, fmt = build_rewards(args.reward_funcs, args.unparseable_penalty, bool(args.system_prompt))
    assert (l1.metric, l1.penalty, d1.metric, d1.penalty) == ("l1", -5.0, "delta1", -5.0)
    assert isinstance(fmt, FormatReward) and fmt.think_answer
    _, args, _ = _grpo_args("--reward_funcs", "format", "--system_prompt", "")
    assert not build_rewards(args.reward_funcs, args.unparseable_penalty, bool(args.system_prompt))[0].think_answer


def test_unknown_reward_name_lists_valid_ones():
    _, args, _ = _grpo_args("--reward_funcs", "neg_l1", "negative_l1")
    with pytest.raises(ValueError, match="Unknown reward 'negative_l1'. Available: neg_l1, neg_l2, neg_absrel, delta1"):
        build_rewards(args.reward_funcs)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_use_vllm_without_vllm_fails_clearly():
    _, args, _ = _grpo_args("--use_vllm", "true")
    with pytest.raises(ValueError, match="vLLM is not installed"):
        check_vllm(args)


def test_paper_defaults():
    _, args, _ = _grpo_args()
    defaults = grpo.DepthLMGRPOConfig(output_dir="unused", use_cpu=True)
    assert (defaults.num_generations, defaults.beta, defaults.learning_rate) == (8, 0.0, 1e-5)
    assert (defaults.lr_scheduler_type, defaults.max_grad_norm, defaults.reward_funcs) == (
        "constant",
        1.0,
        ["neg_l1"],
    )
    assert args.reward_funcs == ["neg_l1"]


def test_example_script_runs(tmp_path):
    """`examples/train_grpo.py` is the command as a plain script."""
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / "train_grpo.py"
    argv = [
        "--config",
        str(RECIPE),
        "--output_dir",
        str(tmp_path),
        "--max_steps",
        "1",
        "--synthetic_scenes",
        "2",
    ]
    command = [sys.executable, str(example), *argv, "--max_completion_length", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "README.md").is_file()
