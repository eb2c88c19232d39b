"""DepthLMPredictor: batched answers equal full generation, None for unparseable output, confidence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from depthlm_hf.inference.decoding import DepthPrediction, Generated, NumberEndCriteria, TokenClasses
from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.testing import fit_answer_template, flat_image

pytestmark = pytest.mark.usefixtures("one_thread")

W, H = 112, 84
CAMERA = [100.0, 100.0, W / 2, H / 2, W, H]
VALUES = (1.25, 2.5, 4.75, 8.0)


def fit_template(model, processor, values=VALUES, steps=150, lr=3e-3):
    """The shared tiny-model SFT (`depthlm_hf.testing.fit_answer_template`) on this file's camera."""
    fit_answer_template(model, processor, values, CAMERA, steps, lr)
    return model


@pytest.fixture(scope="module")
def trained():
    from depthlm_hf.models.tiny import tiny_qwen2_5_vl

    torch.manual_seed(0)
    model, processor = tiny_qwen2_5_vl(seed=1)
    return fit_template(model, processor), processor


def test_random_model_gives_value_or_none_per_point(tiny):
    model, processor = tiny
    predictor = DepthLMPredictor(model, processor, batch_size=3, show_progress=False)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    points = [[56, 42], [20, 20], [90, 60], [30, 70], [80, 15]]
    out = predictor.predict(image, CAMERA, points)
    assert isinstance(out, DepthPrediction) and len(out) == 5 and out.confidence.shape == (5,)
    for value, conf in zip(out.values, out.confidence, strict=True):
        assert value is None and math.isnan(conf) or isinstance(value, float) and 0 < conf <= 1
    assert np.isnan(out.as_array()).sum() == sum(v is None for v in out.values)


def test_trained_model_answers_match_plain_generate(trained):
    model, processor = trained
    predictor = DepthLMPredictor(model, processor, batch_size=4, show_progress=False)
    for i, value in enumerate(VALUES):
        out = predictor.predict(flat_image(40 + 50 * i), CAMERA, [[W // 2, H // 2]])
        inputs = processor(images=flat_image(40 + 50 * i), intrinsics=CAMERA, points=[[W // 2, H // 2]])
        full = model.generate(**inputs, max_new_tokens=40, do_sample=False)
        text = processor.decode(full[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        assert text == processor.format_answer(value)
        assert out.values == [value] and out.texts == [f"{value:.2f} meters"]
        assert 0.5 < out.confidence[0] <= 1.0


def test_batching_and_left_padding_do_not_change_answers(trained):
    model, processor = trained
    predictor = DepthLMPredictor(model, processor, show_progress=False)
    points = [[56, 42], [30, 30], [80, 50], [50, 60], [60, 25]]
    one = predictor.predict(flat_image(140), CAMERA, points, batch_size=1)
    many = predictor.predict(flat_image(140), CAMERA, points, batch_size=4)
    assert one.values == many.values
    np.testing.assert_allclose(one.confidence, many.confidence, rtol=1e-4)


def test_unified_image_gives_the_processor_inputs_of_the_raw_image(tiny):
    _, processor = tiny
    predictor = DepthLMPredictor(*tiny, show_progress=False)
    camera = [91.3, 95.7, 57.2, 40.1, W, H]
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (H, W, 3), dtype=np.uint8))
    points = np.array([[56, 42], [21, 17]])
    unified, exact, transform = predictor.unify(image, camera)
    direct = processor(images=image, intrinsics=camera, points=points, force_answer_prefix=True)
    shared = processor(
        images=unified,
        intrinsics=exact,
        points=np.rint(transform.map_points(points)),
        force_answer_prefix=True,
    )
    for key in direct:
        torch.testing.assert_close(direct[key], shared[key], rtol=0, atol=0)


def test_number_end_and_confidence_rules(tiny):
    _, processor = tiny
    tok = processor.tokenizer
    classes = TokenClasses(tok)
    ids = tok("2.35 meters away", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[:5] == ["2", ".", "3", "5", "Ġmeters"]
    assert classes.number_end(ids) == 4
    assert classes.number_end(ids[:4]) is None  # still inside the number
    assert classes.number_end(tok("far", add_special_tokens=False)["input_ids"]) == 0
    # Confidence multiplies the probabilities up to the first decimal digit only.
    assert classes.confidence(ids[:4], [math.log(0.9), math.log(0.8), math.log(0.5), math.log(0.1)]) == pytest.approx(
        0.9 * 0.8 * 0.5
    )
    criteria = NumberEndCriteria(classes, prompt_length=1)
    batch = torch.tensor([[0, ids[0], ids[1]], [0, ids[0], ids[4]]])
    assert criteria(batch, None).tolist() == [False, True]


def test_number_cut_by_max_new_tokens_is_none(trained):
    model, processor = trained
    predictor = DepthLMPredictor(model, processor, max_new_tokens=3, show_progress=False)
    out = predictor.predict(flat_image(90), CAMERA, [[W // 2, H // 2]])
    assert out.values == [None] and math.isnan(out.confidence[0]) and out.texts == ["2.5"]


def test_from_pretrained_round_trip(tiny_dir, tiny):
    predictor = DepthLMPredictor.from_pretrained(tiny_dir, show_progress=False, batch_size=2)
    assert predictor.device.type == "cpu" and predictor.batch_size == 2
    reference = DepthLMPredictor(*tiny, show_progress=False)
    image = flat_image(100)
    a = predictor.predict(image, CAMERA, [[56, 42], [30, 30]])
    b = reference.predict(image, CAMERA, [[56, 42], [30, 30]])
    assert a.texts == b.texts


def test_two_point_task_groups_points_and_errors_are_clear(tiny):
    predictor = DepthLMPredictor(*tiny, show_progress=False)
    out = predictor.predict(
        flat_image(100), CAMERA, [[20, 20], [80, 60], [30, 60], [70, 20]], task="two_point_distance"
    )
    assert len(out) == 2
    with pytest.raises(ValueError, match="multiple of 2"):
        predictor.predict(flat_image(100), CAMERA, [[20, 20]], task="two_point_distance")
    with pytest.raises(ValueError, match="`task`"):
        predictor.predict(flat_image(100), CAMERA, [[20, 20]], task="translation")
    with pytest.raises(ValueError, match="`batch_size`"):
        predictor.predict(flat_image(100), CAMERA, [[20, 20]], batch_size=0)
    with pytest.raises(ValueError, match=r"`points` must have shape \(N, 2\).*\(2, 3\)"):
        predictor.predict(flat_image(100), CAMERA, np.zeros((2, 3)))  # never read as 3 queries
    with pytest.raises(TypeError, match="`processor`"):
        DepthLMPredictor(tiny[0], object())


def test_unfit_points_get_none_and_a_reason_not_an_error(trained):
    predictor = DepthLMPredictor(*trained, batch_size=2, show_progress=False)
    image = flat_image(40 + 50 * 2)
    alone = predictor.predict(image, CAMERA, [[W // 2, H // 2]])
    out = predictor.predict(image, CAMERA, [[0, 0], [W // 2, H // 2], [500, 20], [0, H // 2]])
    assert out.values == [None, alone.values[0], None, None] == [None, VALUES[2], None, None]
    assert out.confidence[1] == alone.confidence[0] and np.isnan(out.confidence[[0, 2, 3]]).all()
    assert out.texts == ["", alone.texts[0], "", ""]
    assert out.reasons == [
        "too near the border for its arrow marker (size 5)",
        None,
        f"outside the {W}x{H} image",
        "too near the border for its arrow marker (size 5)",
    ]
    pairs = predictor.predict(image, CAMERA, [[20, 20], [0, 0], [30, 60], [70, 20]], task="two_point_distance")
    assert pairs.values[0] is None and pairs.reasons[0].startswith("too near") and pairs.reasons[1] is None
    nothing = predictor.predict(image, CAMERA, [[0, 0]])
    assert nothing.values == [None] and nothing.confidence.shape == (1,)
    batch = predictor.predict_batch([(flat_image(40), CAMERA, [[0, 0]]), (image, CAMERA, [[0, 1], [W // 2, H // 2]])])
    assert batch.values == [None, None, VALUES[2]] and batch.reasons[2] is None  # an image with nothing to ask


def test_predict_rows_matches_predict_on_evaluation_rows(trained):
    from depthlm_hf.data import EvaluationView

    model, processor = trained
    predictor = DepthLMPredictor(model, processor, batch_size=3, show_progress=False)
    record = {
        "image": flat_image(140),
        "intrinsics": CAMERA,
        "pixel_coords": np.array([[56, 42], [30, 30], [80, 50], [50, 60]]),
        "depth": np.array([1.0, 2.0, 3.0, 4.0]),
    }
    view = EvaluationView([record], processor, num_samples=None)
    rows = [view[i] for i in range(len(view))]
    by_rows = predictor.predict_rows(rows)
    direct = predictor.predict(record["image"], CAMERA, record["pixel_coords"])
    assert by_rows.values == direct.values and len(by_rows) == 4
    np.testing.assert_allclose(by_rows.confidence, direct.confidence, rtol=1e-4)
    assert len(predictor.predict_rows([])) == 0


def test_official_pixtral_checkpoint_format(tmp_path):
    """The official release's format (Llava/Pixtral, f* = 750 px by fx, think/answer tags), same predictor."""
    from transformers import LlavaForConditionalGeneration

    from depthlm_hf.models.tiny import tiny_llava_pixtral

    model, processor = tiny_llava_pixtral(seed=0)
    assert processor.preset == "official_pixtral" and processor.unified_focal_length == 750.0
    assert processor.answer_prefix() == "<think> The point is around "
    torch.manual_seed(0)
    fit_template(model, processor, steps=150)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    predictor = DepthLMPredictor.from_pretrained(tmp_path, show_progress=False)
    assert isinstance(predictor.model, LlavaForConditionalGeneration)
    for i, value in enumerate(VALUES):
        image = flat_image(40 + 50 * i)
        out = predictor.predict(image, CAMERA, [[W // 2, H // 2]])
        inputs = processor(images=image, intrinsics=CAMERA, points=[[W // 2, H // 2]])
        full = model.generate(**inputs, max_new_tokens=60, do_sample=False)
        text = processor.decode(full[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        assert text == processor.format_answer(value) and processor.parse_answer(text) == value
        assert out.values == [value]


def test_fast_image_path_gives_the_same_answers(trained):
    model, processor = trained
    points = [[56, 42], [30, 30], [80, 50], [50, 60], [60, 25], [8, 8]]
    fast = DepthLMPredictor(model, processor, batch_size=4, show_progress=False)
    slow = DepthLMPredictor(model, processor, batch_size=4, show_progress=False, fast_images=False)
    a, b = fast.predict(flat_image(90), CAMERA, points), slow.predict(flat_image(90), CAMERA, points)
    assert a.values == b.values and a.texts == b.texts
    np.testing.assert_allclose(a.confidence, b.confidence, rtol=1e-5)


def test_other_image_backends_fall_back_to_the_stock_path(trained, monkeypatch):
    """With the torchvision-backed image processor (GPU machines) the fast path is off and answers stay right."""
    from depthlm_hf.models import families
    from depthlm_hf.prompting import marker_patches

    model, processor = trained
    points = [[56, 42], [30, 30]]
    reference = DepthLMPredictor(model, processor, show_progress=False, fast_images=False).predict(
        flat_image(90), CAMERA, points
    )
    monkeypatch.setattr(families, "MARKER_PATCH_TYPES", (type("NotThisBackend", (), {}),))
    assert not marker_patches.supported(processor)
    monkeypatch.setattr(marker_patches, "MarkedImageBatcher", None)  # the fast path must not be reached
    got = DepthLMPredictor(model, processor, show_progress=False).predict(flat_image(90), CAMERA, points)
    assert got.values == reference.values and got.texts == reference.texts


def test_vllm_backend_import_guard(tiny_dir):
    import importlib.util

    from depthlm_hf.inference.vllm import VLLMPredictor

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed: the guard does not apply")
    with pytest.raises(ImportError, match="pip install vllm"):
        VLLMPredictor.from_pretrained(tiny_dir)


def test_forced_prefix_tokenizes_like_the_trained_answer(tiny):
    from depthlm_hf.tasks.text import TASKS

    predictor = DepthLMPredictor(*tiny, show_progress=False)
    assert all(predictor.processor.forced_prefix(task) == predictor.processor.answer_prefix(task) for task in TASKS)


def test_predict_resizes_each_image_once(tiny, monkeypatch):
    """The module docstring's promise: focal unification (the costly resize) runs once per image, not per query."""
    from depthlm_hf.prompting import processing

    model, processor = tiny
    resizes = []
    original = processing.apply_transform

    def counting(image, transform, *args, **kwargs):
        out = original(image, transform, *args, **kwargs)
        if out.size != image.size:
            resizes.append(out.size)
        return out

    monkeypatch.setattr(processing, "apply_transform", counting)
    predictor = DepthLMPredictor(model, processor, batch_size=2, show_progress=False, fast_images=False)
    predictor.predict(Image.new("RGB", (112, 84)), [91.3, 95.7, 57.2, 40.1, 112, 84], [[50, 40], [60, 30], [70, 50]])
    assert len(resizes) == 1


def test_generate_log_probs_equal_the_greedy_log_softmax(tiny):
    """`compute_transition_scores` gives what the former recorder did: log_softmax(processed scores).max per step."""
    from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteriaList

    class Recorder(LogitsProcessor):  # the former `_SelectedLogProb`: last in the list, sees the processed scores
        def __init__(self):
            self.steps = []

        def __call__(self, input_ids, scores):
            self.steps.append(torch.log_softmax(scores.float(), dim=-1).max(dim=-1).values)
            return scores

    model, processor = tiny
    predictor = DepthLMPredictor(model, processor, show_progress=False)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8))
    inputs = processor(images=image, intrinsics=CAMERA, points=[[56, 42], [20, 20], [90, 60]], force_answer_prefix=True)
    got = predictor.generate(inputs)
    length = inputs["input_ids"].shape[1]
    recorder = Recorder()
    reference = model.generate(
        **inputs,
        do_sample=False,
        max_new_tokens=predictor.max_new_tokens,
        stopping_criteria=StoppingCriteriaList([NumberEndCriteria(predictor.classes, length)]),
        logits_processor=LogitsProcessorList([recorder]),
    )
    assert got.tokens == reference[:, length:].tolist() and len(got.tokens[0]) == len(recorder.steps) > 0
    np.testing.assert_allclose(np.array(got.logprobs), torch.stack(recorder.steps, 1).numpy(), rtol=0, atol=1e-5)


def test_the_three_steps_compose_to_predict(trained):
    model, processor = trained
    predictor = DepthLMPredictor(model, processor, batch_size=2, show_progress=False)
    points = [[56, 42], [30, 30], [80, 50]]
    queries = predictor.preprocess(flat_image(140), CAMERA, points)
    assert len(queries) == 3 and queries.image_index().tolist() == [0, 0, 0]
    assert queries.prompt.endswith(processor.forced_prefix()) and queries.points[0].dtype == np.int64
    batches = list(predictor.model_inputs(queries))
    assert [b["input_ids"].shape[0] for b in batches] == [2, 1]
    generated = Generated([], [])
    for inputs in batches:
        generated.extend(predictor.generate(inputs))
    stepwise = predictor.postprocess(generated)
    direct = predictor.predict(flat_image(140), CAMERA, points)
    assert stepwise.values == direct.values and stepwise.texts == direct.texts
    np.testing.assert_allclose(stepwise.confidence, direct.confidence, rtol=1e-5)


def test_predict_batch_equals_predict_per_image(trained):
    model, processor = trained
    predictor = DepthLMPredictor(model, processor, batch_size=3, show_progress=False)
    cameras = [CAMERA, [91.3, 95.7, 57.2, 40.1, W, H]]
    jobs = [(flat_image(40), cameras[0], [[56, 42]]), (flat_image(140), cameras[1], [[30, 30], [80, 50], [50, 60]])]
    batched = predictor.predict_batch(jobs)
    single = [predictor.predict(*job) for job in jobs]
    assert batched.values == [v for s in single for v in s.values] and len(batched) == 4
    assert batched.texts == [t for s in single for t in s.texts]
    np.testing.assert_allclose(batched.confidence, np.concatenate([s.confidence for s in single]), rtol=1e-4)
    assert len(predictor.predict_batch([])) == 0
    with pytest.raises(TypeError, match="`queries`"):
        predictor.predict_batch([(flat_image(40), CAMERA)])


class _FakeVLLM:
    """Stands in for the `vllm` module: `LLM.generate` runs the tiny transformers model greedily per request."""

    class SamplingParams:
        def __init__(self, temperature, max_tokens, logprobs):
            assert temperature == 0.0 and logprobs == 0
            self.max_tokens = max_tokens

    class LLM:
        def __init__(self, model, processor):
            self.model, self.processor, self.requests = model, processor, []

        def generate(self, requests, params, use_tqdm=True):
            from types import SimpleNamespace as NS

            self.requests += requests
            outputs = []
            for request in requests:
                base = self.processor.base_processor
                image, kwargs = request["multi_modal_data"]["image"], request["mm_processor_kwargs"]
                inputs = base(images=[[image]], text=[request["prompt"]], return_tensors="pt", **kwargs)
                out = self.model.generate(
                    **inputs,
                    do_sample=False,
                    max_new_tokens=params.max_tokens,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
                tokens = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
                steps = torch.stack(out.scores, 1)[0].log_softmax(-1)
                logprobs = [{t: NS(logprob=float(steps[i, t]))} for i, t in enumerate(tokens)]
                outputs.append(NS(outputs=[NS(token_ids=tokens, logprobs=logprobs)]))
            return outputs


def test_vllm_backend_reuses_preprocess_and_postprocess(trained, monkeypatch):
    import sys

    from depthlm_hf.inference.vllm import VLLMPredictor

    model, processor = trained
    monkeypatch.setitem(sys.modules, "vllm", _FakeVLLM)
    llm = _FakeVLLM.LLM(model, processor)
    backend = VLLMPredictor(llm, processor, batch_size=2)
    reference = DepthLMPredictor(model, processor, show_progress=False)
    points = [[56, 42], [30, 30], [80, 50]]
    got, want = backend.predict(flat_image(90), CAMERA, points), reference.predict(flat_image(90), CAMERA, points)
    assert got.values == want.values and got.texts == want.texts and None not in got.values
    np.testing.assert_allclose(got.confidence, want.confidence, rtol=1e-4)
    queries = reference.preprocess(flat_image(90), CAMERA, points)
    assert [r["prompt"] for r in llm.requests] == [queries.prompt] * 3
    for request, image in zip(llm.requests, queries.marked_images(), strict=True):
        assert np.array_equal(np.asarray(request["multi_modal_data"]["image"]), np.asarray(image))


def test_vllm_requests_keep_the_unified_scale(monkeypatch):
    """vLLM runs the checkpoint's own image processor: each request carries the settings that keep the scale."""
    import sys
    from types import SimpleNamespace as NS

    from depthlm_hf.inference.vllm import VLLMPredictor
    from depthlm_hf.models.tiny import tiny_llava_pixtral

    _, processor = tiny_llava_pixtral(longest_edge=1024, image_scale="keep")
    monkeypatch.setitem(sys.modules, "vllm", _FakeVLLM)
    requests = []
    llm = NS(
        generate=lambda batch, params, use_tqdm: requests.extend(batch) or [NS(outputs=[NS(token_ids=[], logprobs=[])])]
    )
    backend = VLLMPredictor(llm, processor)
    backend.answer(backend.preprocess(flat_image(90), CAMERA, [[56, 42]]))
    assert requests[0]["mm_processor_kwargs"] == {"do_resize": False}
