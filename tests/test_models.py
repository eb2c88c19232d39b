"""The tiny offline models: deterministic, digit-level tokenizer, chat template with generation blocks."""

from __future__ import annotations

import torch

from depthlm_hf.models.tiny import tiny_llava_pixtral, tiny_qwen2_5_vl, tiny_tokenizer


def test_digits_are_single_tokens_and_specials_exist():
    tokenizer = tiny_tokenizer()
    pieces = tokenizer.tokenize("around 12.34 meters")
    assert ["1", "2", ".", "3", "4"] == pieces[pieces.index("1") : pieces.index("1") + 5]
    for token in ("<|im_start|>", "<|im_end|>", "<|image_pad|>", "<|vision_start|>", "<image>"):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert tokenizer.tokenize(token) == [token]


def test_same_seed_same_weights_and_small():
    a, _ = tiny_qwen2_5_vl(seed=3)
    b, _ = tiny_qwen2_5_vl(seed=3)
    c, _ = tiny_qwen2_5_vl(seed=4)
    first = next(iter(a.state_dict()))
    assert torch.equal(a.state_dict()[first], b.state_dict()[first])
    assert not torch.equal(a.state_dict()[first], c.state_dict()[first])
    assert sum(p.numel() for p in a.parameters()) < 500_000


def test_assistant_mask_covers_exactly_the_answer(tiny):
    _, processor = tiny
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "How many meters is this point from the camera?"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "The point is around 1.50 meters away from the camera."}],
        },
    ]
    out = processor.tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    answer = processor.tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert answer == "The point is around 1.50 meters away from the camera.<|im_end|>"


def test_bigger_tiny_model_and_llava():
    model, _ = tiny_qwen2_5_vl(hidden_size=128, num_layers=3, vision_hidden_size=96, vision_depth=3)
    assert model.config.text_config.hidden_size == 128 and model.config.vision_config.depth == 3
    llava, processor = tiny_llava_pixtral()
    assert type(llava).__name__ == "LlavaForConditionalGeneration" and processor.unified_focal_length == 750.0


def test_tiny_vlm_is_deterministic_and_shares_the_qwen_tokenizer():
    from depthlm_hf.models import tiny_vlm
    from depthlm_hf.models.families import FAMILIES
    from depthlm_hf.models.tiny import CHAT_TEMPLATE

    a, processor = tiny_vlm("gemma3", seed=3)
    b, _ = tiny_vlm("gemma3", seed=3)
    c, _ = tiny_vlm("gemma3", seed=4)
    first = next(iter(a.state_dict()))
    assert torch.equal(a.state_dict()[first], b.state_dict()[first])
    assert not torch.equal(a.state_dict()[first], c.state_dict()[first])
    assert type(a).__name__ == "Gemma3ForConditionalGeneration" and sum(p.numel() for p in a.parameters()) < 500_000
    # Family tokens come after the trained vocabulary: the tiny Qwen tokenizer's ids are unchanged.
    assert {t: i for t, i in processor.tokenizer.get_vocab().items() if i < 512} == tiny_tokenizer().get_vocab()
    assert processor.tokenizer.boi_token == "<start_of_image>" and processor.tokenizer.eos_token == "<end_of_turn>"
    _, qwen = tiny_vlm("qwen2_5_vl")
    assert qwen.chat_template == CHAT_TEMPLATE == FAMILIES["qwen2_5_vl"].chat.template()
    assert qwen.tokenizer.get_vocab() == tiny_tokenizer().get_vocab()


def test_end_of_turn_comes_from_the_family_and_falls_back_to_eos():
    from depthlm_hf.models import tiny_vlm
    from depthlm_hf.models.families import end_of_turn_token, family_of

    _, gemma = tiny_vlm("gemma3")
    assert family_of(gemma).model_type == "gemma3" and end_of_turn_token(gemma) == "<end_of_turn>"
    _, llava = tiny_llava_pixtral()  # a Llava processor under a ChatML template: no "</s>" in its vocabulary
    assert family_of(llava).model_type == "llava" and end_of_turn_token(llava) == "<|im_end|>"
