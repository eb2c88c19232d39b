"""Reward functions: exact values against hand-computed errors, penalties, TRL signature, registry."""

import pickle

import pytest

from depthlm_hf.training.rewards import (
    REWARDS,
    AnswerReward,
    FormatReward,
    build_rewards,
    completion_text,
    delta1,
    format_reward,
    get_reward,
    negative_absrel,
    negative_l1,
    negative_l2,
)


def conv(text):
    return [{"role": "assistant", "content": text}]


COMPLETIONS = [
    conv("The point is around 3.50 meters away from the camera."),  # 3.5
    conv("<think>near the wall</think><answer> 1.25 </answer>"),  # 1.25
    conv("I cannot tell."),  # unparseable
    conv("around 250 cm"),  # 2.5 m
]
DEPTH = [2.0, 1.0, 4.0, 2.5]


def test_negative_l1_hand_computed():
    # -|p - t|: -|3.5 - 2|, -|1.25 - 1|, penalty, -|2.5 - 2.5|
    assert negative_l1()(COMPLETIONS, depth=DEPTH) == [-1.5, -0.25, -100.0, 0.0]


def test_negative_l2_and_absrel_hand_computed():
    assert negative_l2()(COMPLETIONS, depth=DEPTH) == [-2.25, -0.0625, -1.0e4, 0.0]
    assert negative_absrel()(COMPLETIONS, depth=DEPTH) == [-0.75, -0.25, -10.0, 0.0]


def test_delta1_band():
    # ratios 1.75, 1.25 (not < 1.25), unparseable, 1.0
    assert delta1()(COMPLETIONS, depth=DEPTH) == [0.0, 0.0, 0.0, 1.0]
    assert delta1()([conv("1.2 meters")], depth=[1.0]) == [1.0]


def test_penalty_is_configurable_and_none_is_left_out():
    assert negative_l1(penalty=-7.5)([conv("no number")], depth=[2.0]) == [-7.5]
    assert negative_l1(penalty=None)([conv("no number")], depth=[2.0]) == [None]


def test_bad_targets_give_none():
    assert negative_absrel()([conv("2 m"), conv("2 m")], depth=[0.0, float("nan")]) == [None, None]


def test_task_column_parses_per_row():
    # a length task converts cm; a time task keeps the number as seconds
    rewards = negative_l1()([conv("150 cm"), conv("150 cm")], depth=[1.0, 150.0], task=["distance", "time"])
    assert rewards == [-0.5, 0.0]


def test_format_reward():
    completions = [
        conv("<think>far</think><answer> 12.5 </answer>"),
        conv("<think>far</think> 12.5"),
        conv("<think>far</think><answer> far </answer>"),
        "<think></think><answer>3</answer>",
    ]
    assert format_reward()(completions) == [1.0, 0.0, 0.0, 1.0]
    assert format_reward(think_answer=False)(completions) == [1.0, 1.0, 0.0, 1.0]


def test_trl_call_convention():
    """TRL passes prompts, completion ids, trainer state and every dataset column as keywords."""
    reward = get_reward("neg_l1")
    out = reward(
        prompts=[[]],
        completions=[conv("2 m")],
        completion_ids=[[1]],
        depth=[3.0],
        image=[None],
        trainer_state=None,
        log_extra=None,
        log_metric=None,
    )
    assert out == [-1.0]


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="`depth` has 1 values for 2 completions"):
        negative_l1()([conv("1"), conv("2")], depth=[1.0])


def test_completion_text_forms():
    assert completion_text("x") == "x"
    assert (
        completion_text(
            [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
        )
        == "ab"
    )


def test_rewards_are_picklable_with_distinct_names():
    for name in REWARDS:
        reward = get_reward(name)
        clone = pickle.loads(pickle.dumps(reward))
        assert clone == reward and clone.__name__ == reward.__name__
    names = {get_reward(name).__name__ for name in REWARDS}
    assert len(names) == len(REWARDS)


def test_registry_params_and_dotted_path():
    assert get_reward("neg_l1", penalty=-3.0).penalty == -3.0
    # without parameters an imported object is returned as it is (a reward function, or here a factory)
    assert get_reward("depthlm_hf.training.rewards:negative_l2") is negative_l2
    assert get_reward("depthlm_hf.training.rewards.negative_l2", penalty=-1.0) == AnswerReward(
        "l2", -1.0, name="neg_l2"
    )


def test_unknown_reward_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_reward("neg_l3")
    for name in REWARDS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="Cannot import reward 'no_such_module.reward'.*Available: neg_l1"):
        get_reward("no_such_module.reward")


def test_a_name_without_a_dot_is_never_imported():
    # `os:getcwd` is importable, but only an explicit dotted path leaves the registry.
    with pytest.raises(ValueError, match="Unknown reward 'os:getcwd'. Available: neg_l1, neg_l2"):
        get_reward("os:getcwd")
    with pytest.raises(ValueError, match="Unknown reward 'depthlm_hf'"):
        get_reward("depthlm_hf")


def test_build_rewards_sets_the_penalty_and_layout_by_reward_type():
    l1, d1, fmt, l2 = build_rewards(
        ["neg_l1", "delta1", "format", "depthlm_hf.training.rewards.negative_l2"], unparseable_penalty=-5.0
    )
    assert (l1, d1) == (AnswerReward("l1", -5.0, name="neg_l1"), AnswerReward("delta1", -5.0, name="delta1"))
    assert fmt == FormatReward(think_answer=True, penalty=0.0) and l2 is negative_l2  # a factory is left alone
    default, plain = build_rewards(["neg_l1", "format"], think_answer=False)
    assert default.penalty == -100.0 and plain.think_answer is False


def test_bad_metric_raises():
    with pytest.raises(ValueError, match="`metric`"):
        AnswerReward("l3")
