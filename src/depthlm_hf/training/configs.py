"""Arguments of the `depthlm sft` and `depthlm grpo` scripts: data and visual-prompt settings, plus TRL's
trainer configs with the DepthLM defaults.

Each dataclass field is a command-line flag (`--unified_focal_length 750`) and a recipe key (YAML under
`recipes/`); `trl.TrlParser` reads `--config recipe.yaml` as defaults and lets flags override them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from trl import GRPOConfig, SFTConfig

from depthlm_hf.choices import check_choice, check_dataclass_choices
from depthlm_hf.data.skips import DEFAULT_MAX_SKIPPED_FRACTION, check_limit
from depthlm_hf.data.sources import DatasetSpec, parse_dataset_specs
from depthlm_hf.data.synthetic.scenes import get_config as scene_config
from depthlm_hf.data.views import CROP_POSITIONS, CropPosition
from depthlm_hf.geometry import FOCAL_MODES, FocalMode
from depthlm_hf.models.vision_attention import VISION_ATTENTIONS, VisionAttention
from depthlm_hf.prompting.markers import MARKER_SHAPES, MarkerShape
from depthlm_hf.prompting.presets import PRESET_NAMES, PresetName
from depthlm_hf.resources import check_output_dir, no_remote_code
from depthlm_hf.tasks.text import TASK_NAMES
from depthlm_hf.training.rewards import REWARDS

GRPO_SYSTEM_PROMPT = (
    "You answer questions about distances in images. First reason about the question inside <think> </think> "
    "tags, then write the final answer, a number in the unit the question asks for, inside <answer> "
    "</answer> tags, for example: <think> reasoning here </think><answer> 3.25 </answer>"
)
"""System prompt of GRPO training: reason in `<think>`, answer in `<answer>` (parsed by `parse_answer`)."""

LossOn = Literal["answer", "all_but_image"]
LOSS_ON: tuple[LossOn, ...] = get_args(LossOn)
"""Tokens that carry the SFT loss: "answer", the paper's (the answer and the end of turn); "all_but_image", the
official release's `train.py` (every token of the conversation but padding and the image token `[IMG]`)."""

TrainingPixels = Literal["unified", "release"]
TRAINING_PIXELS: tuple[TrainingPixels, ...] = get_args(TrainingPixels)
"""Pixels of an SFT image: "unified", the marked image at the unified focal length; "release", the official
release's Pixtral training (the marked image resized by PIL's bicubic to the nearest multiples of 28 px, and the
image processor saved with `do_rescale` off; see `depthlm_hf.training.trainers.release_training_size`)."""


def _check_range(name: str, values: list[int] | None) -> None:
    if values is None:
        return
    if len(values) != 2 or not 0 < values[0] <= values[1]:
        raise ValueError(f"`{name}` must be two sizes [min, max] [px] with 0 < min <= max, got {values!r}.")


def _check_weights(name: str, weights: list[float] | None, count: int, of: str) -> None:
    if weights is None:
        return
    if len(weights) != count:
        raise ValueError(f"`{name}` has {len(weights)} weights for {count} {of}; give one per entry.")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"`{name}` must be >= 0 with a positive sum, got {weights!r}.")


@dataclass
class DepthLMScriptArguments:
    """Data sources, task mixture and visual-prompt settings shared by SFT and GRPO.

    Paper defaults: random crops of width 1000-1400 and height 700-1200 px
    centred on the image centre, one red arrow per sample, equal sampling of datasets and tasks.
    """

    dataset: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Curated datasets, each as `[NAME=]JSONL[:IMAGE_ROOT]` or, in a recipe, a mapping "
            "`{name, jsonl, image_root, weight}` (`depthlm_hf.data.sources`; weight: the mixture's sampling "
            "weight, default equal as in the paper). Empty: train on the `synthetic` preset."
        },
    )
    synthetic: str = field(
        default="indoor",
        metadata={
            "help": "Procedural scene preset used when `dataset` is empty (see `depthlm_hf.data.synthetic.scenes`): "
            "indoor 1-10 m, outdoor 2-80 m, ground (a plain ground plane, the easiest for a tiny model on "
            "CPU)."
        },
    )
    synthetic_scenes: int = field(
        default=512,
        metadata={"help": "Number of synthetic scenes to generate when `dataset` is empty."},
    )
    synthetic_image_size: list[int] | None = field(
        default=None,
        metadata={"help": "Width and height [px] of synthetic images (default: the preset's random sizes)."},
    )
    tasks: list[str] = field(
        default_factory=lambda: ["distance"],
        metadata={"help": f"Tasks to train on, mixed in one model. Available: {', '.join(TASK_NAMES)}."},
    )
    task_weights: list[float] | None = field(
        default=None,
        metadata={"help": "Sampling weight of each task (default: equal, as in the paper)."},
    )
    crop_width: list[int] | None = field(
        default_factory=lambda: [1000, 1400],
        metadata={"help": "Range [min, max] [px] of the random crop width after focal unification (none: no crop)."},
    )
    crop_height: list[int] | None = field(
        default_factory=lambda: [700, 1200],
        metadata={"help": "Range [min, max] [px] of the random crop height after focal unification."},
    )
    crop_position: CropPosition = field(
        default="center",
        metadata={
            "help": f"Crop window placement ({', '.join(CROP_POSITIONS)}): centred on the image centre (official "
            "release) or random."
        },
    )
    aspect_jitter: list[float] | None = field(
        default=None,
        metadata={
            "help": "Range [lo, hi] of the random height stretch with unchanged intrinsics (the paper's fix "
            "for Taskonomy; the official release uses [1.0, 1.3]). Labels are unchanged."
        },
    )
    unified_focal_length: float | None = field(
        default=None,
        metadata={
            "help": "Focal length f* [px] every image is resized to (paper: 1000; Pixtral: 750). Default: "
            "the model's saved DepthLM processor setting, else the `processor_preset`'s."
        },
    )
    focal_mode: FocalMode | None = field(
        default=None,
        metadata={
            "help": f"Focal unification ({', '.join(FOCAL_MODES)}): 'xy' scales each axis to f*, 'fx' both by f*/fx "
            "(official release)."
        },
    )
    marker_shape: MarkerShape | None = field(
        default=None, metadata={"help": f"Shape of the drawn marker ({', '.join(MARKER_SHAPES)}; paper: arrow)."}
    )
    marker_size: int | None = field(default=None, metadata={"help": "Marker size [px] (paper: 5)."})
    processor_preset: PresetName | None = field(
        default=None,
        metadata={
            "help": f"DepthLMProcessor preset ({', '.join(PRESET_NAMES)}; `depthlm_hf.prompting.presets.PRESETS`) "
            "used when the model folder has no saved DepthLM processor. Unset: official_pixtral for the official "
            "release's files (facebook/DepthLM or a copy), else paper (a base VLM)."
        },
    )
    max_image_pixels: int | None = field(
        default=None,
        metadata={"help": "Decompression-bomb guard for input images [px] (default: the processor's)."},
    )
    eval_samples: int = field(
        default=0,
        metadata={"help": "Samples of the deterministic evaluation view used for `eval_strategy` (0: no evaluation)."},
    )
    max_skipped_fraction: float = field(
        default=DEFAULT_MAX_SKIPPED_FRACTION,
        metadata={
            "help": "Largest share of records a run may skip (bad lines, missing or unreadable images), at the "
            "start scan and among the records drawn in training; above it the run fails (0..1)."
        },
    )
    scan_data: bool = field(
        default=True,
        metadata={
            "help": "Scan every curated record (and that its image file exists) before training and report the "
            "skips; turn off for very large datasets (the counts then come from the records drawn)."
        },
    )
    rows_per_image: int = field(
        default=1,
        metadata={
            "help": "Consecutive training rows drawn from one decoded, focal-unified image, each with its own crop, "
            "task and pixels (`depthlm_hf.data.GroupedTrainingView`; the paper trains on several labelled pixels "
            "per image). > 1 decodes each image once, and SFT then reads the rows in index order."
        },
    )
    vision_attention: VisionAttention = field(
        default="batched",
        metadata={
            "help": f"Qwen2.5-VL vision attention ({', '.join(VISION_ATTENTIONS)}): 'batched' runs one SDPA call "
            "per window length and block (`depthlm_hf.models.vision_attention`, same outputs), 'stock' "
            "transformers' call per window."
        },
    )

    def __post_init__(self) -> None:
        check_dataclass_choices(self)
        self.dataset_specs()
        unknown = [task for task in self.tasks if task not in TASK_NAMES]
        if unknown or not self.tasks:
            raise ValueError(f"Unknown `tasks` {unknown or self.tasks!r}. Available: {', '.join(TASK_NAMES)}.")
        _check_weights("task_weights", self.task_weights, len(self.tasks), "tasks")
        _check_range("crop_width", self.crop_width)
        _check_range("crop_height", self.crop_height)
        if (self.crop_width is None) != (self.crop_height is None):
            raise ValueError("`crop_width` and `crop_height` must both be set or both be empty.")
        if self.synthetic_scenes <= 0:
            raise ValueError(f"`synthetic_scenes` must be > 0, got {self.synthetic_scenes}.")
        if self.aspect_jitter is not None and (
            len(self.aspect_jitter) != 2 or not 0 < self.aspect_jitter[0] <= self.aspect_jitter[1]
        ):
            raise ValueError(f"`aspect_jitter` must be [lo, hi] with 0 < lo <= hi, got {self.aspect_jitter!r}.")
        if self.synthetic_image_size is not None and len(self.synthetic_image_size) != 2:
            raise ValueError(f"`synthetic_image_size` must be [width, height], got {self.synthetic_image_size!r}.")
        try:
            scene_config(self.synthetic)
        except ValueError as err:
            raise ValueError(f"`synthetic`: {err}") from None
        check_limit(self.max_skipped_fraction)
        if self.unified_focal_length is not None and self.unified_focal_length <= 0:
            raise ValueError(f"`unified_focal_length` must be > 0 [px], got {self.unified_focal_length}.")
        if self.rows_per_image < 1:
            raise ValueError(f"`rows_per_image` must be >= 1, got {self.rows_per_image}.")

    def processor_overrides(self) -> dict[str, Any]:
        """The DepthLMProcessor settings given explicitly (`marker` holds only the given marker keys)."""
        overrides: dict[str, Any] = {
            "unified_focal_length": self.unified_focal_length,
            "focal_mode": self.focal_mode,
            "max_image_pixels": self.max_image_pixels,
        }
        overrides = {key: value for key, value in overrides.items() if value is not None}
        marker = {"shape": self.marker_shape, "size": self.marker_size}
        marker = {key: value for key, value in marker.items() if value is not None}
        if marker:
            overrides["marker"] = marker
        return overrides

    def dataset_specs(self) -> list[DatasetSpec]:
        """The `dataset` entries parsed (names unique, weights >= 0).

        >>> args = DepthLMScriptArguments(dataset=["a/x.jsonl:a", {"jsonl": "y.jsonl", "weight": 0.1}])
        >>> [(spec.name, spec.weight) for spec in args.dataset_specs()]
        [('x', 1.0), ('y', 0.1)]
        """
        return parse_dataset_specs(self.dataset, "dataset")


def check_trainer_arguments(args: Any) -> None:
    """Refuse trainer arguments that would fail deep inside a run (a negative seed, an empty batch), naming
    the argument, before anything is loaded."""
    if args.seed < 0:
        raise ValueError(f"`seed` must be an integer >= 0 (it seeds numpy's SeedSequence), got {args.seed}.")
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, got {getattr(args, name)}.")
    no_remote_code({"trust_remote_code": args.trust_remote_code})
    if args.output_dir is not None:
        check_output_dir(args.output_dir)


@dataclass
class DepthLMSFTConfig(SFTConfig):
    """`trl.SFTConfig` with DepthLM's defaults: loss on the answer only, no truncation (a truncated sequence
    would cut image tokens), cosine schedule with 10% warmup, as in the paper; plus the official release's
    objective and training pixels as options (`loss_on`, `training_pixels`)."""

    completion_only_loss: bool | None = field(
        default=True, metadata={"help": "Loss on the answer tokens (and end of turn) only (set from `loss_on`)."}
    )
    loss_on: LossOn = field(
        default="answer",
        metadata={
            "help": "Tokens that carry the loss: 'answer' (the paper: the answer and end of turn) or 'all_but_image' "
            "(the official release's train.py: every token but padding and the image token)."
        },
    )
    training_pixels: TrainingPixels = field(
        default="unified",
        metadata={
            "help": "Training image pixels: 'unified' (the marked image at f*) or 'release' (the official release's "
            "Pixtral training: resized to multiples of 28 px, bicubic, and `do_rescale` off in the saved processor)."
        },
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Maximum sequence length; `None` keeps every image token (recommended for VLMs)."},
    )
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule (paper: cosine)."})
    warmup_steps: float = field(
        default=0.1,
        metadata={"help": "Warmup steps, or a fraction of the training steps when < 1 (paper: 0.1)."},
    )

    def __post_init__(self) -> None:
        check_trainer_arguments(self)
        check_choice("loss_on", self.loss_on, LossOn)
        check_choice("training_pixels", self.training_pixels, TrainingPixels)
        self.completion_only_loss = self.loss_on == "answer"
        super().__post_init__()


@dataclass
class DepthLMGRPOConfig(GRPOConfig):
    """`trl.GRPOConfig` with the paper's GRPO recipe as defaults (group size 8, beta 0, constant learning
    rate 1e-5, gradient clipping 1.0) plus the reward choice and the think/answer system prompt."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["neg_l1"],
        metadata={
            "help": f"Reward functions: names in `depthlm_hf.training.rewards.REWARDS` ({', '.join(REWARDS)}) or "
            "dotted import paths. Paper: neg_l1."
        },
    )
    unparseable_penalty: float | None = field(
        default=None,
        metadata={
            "help": "Reward of a completion with no parseable answer for the accuracy rewards (default: each "
            "reward's own, e.g. -100 for neg_l1)."
        },
    )
    system_prompt: str | None = field(
        default=GRPO_SYSTEM_PROMPT,
        metadata={"help": "System prompt of the GRPO conversations (saved with the processor); empty: none."},
    )
    learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate (paper: 1e-5, constant)."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "Learning-rate schedule (paper: constant)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping (paper: 1.0)."})
    num_generations: int | None = field(default=8, metadata={"help": "Completions per prompt (paper: 8)."})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient (paper: 0, no reference model)."})
    max_completion_length: int | None = field(
        default=256, metadata={"help": "Maximum generated tokens per completion (think + answer)."}
    )

    def __post_init__(self) -> None:
        check_trainer_arguments(self)
        super().__post_init__()
