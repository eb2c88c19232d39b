"""The whole `depthlm demo` run: a tiny VLM learns metric depth from scratch on CPU, evaluated against
constant baselines.

Reads top to bottom (`run`): seed, scenes, processor, model; stage 1 (localisation: task "marker_row" on the
principal window) and stage 2 (depth on the crop's training windows), each a TRL `SFTTrainer` with the
`depthlm sft` collator (loss on the answer only); held-out evaluation of the saved checkpoint through the public
predictor against constants; pictures, point cloud, report (wall and process CPU seconds per stage).
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from transformers import set_seed
from trl import SFTTrainer

from depthlm_hf.choices import check_dataclass_choices
from depthlm_hf.data.views import index_dataset
from depthlm_hf.demo.data import (
    Crop,
    DemoScenes,
    SceneBank,
    model_image,
    processor_window,
    render_bank,
    window_markable,
)
from depthlm_hf.demo.export import HELD_OUT, write_held_out
from depthlm_hf.demo.learning import (
    LearningCurve,
    LocalisationRows,
    TrainingRows,
    answer,
    build_model,
    constant_baselines,
    demo_processor,
    evaluate,
    stage_labels,
)
from depthlm_hf.demo.report import plot_examples, plot_learning_curve, plot_point_cloud, write_report
from depthlm_hf.geometry import backproject
from depthlm_hf.inference.pointcloud import PointCloud, query_grid
from depthlm_hf.inference.predictor import DepthLMPredictor
from depthlm_hf.models.families import get_family
from depthlm_hf.prompting.processing import DepthLMProcessor
from depthlm_hf.training.configs import DepthLMSFTConfig
from depthlm_hf.training.modelcard import CARD_METRICS, ModelCardInfo, recipe_from_args, write_model_card
from depthlm_hf.training.trainers import AnswerOnlyCollator

DESCRIPTIONS = {
    "full": "Full method: every image is resized to the unified focal length and a marker (a red arrow by default) "
    "sits on the query pixel. The model first learns to say the marker's row (stage 1, no depth label), then depth "
    "on the crop's training windows (the paper's geometry: principal-point crops of random size; evaluation on "
    "the whole unified image).",
    "focal": "Ablation `focal`: no focal unification; the whole native frame is resized to the model image size, "
    "so the apparent scale of the scene varies with the camera (focal 300-1500 px).",
    "marker": "Ablation `marker`: no marker (and no localisation stage); the query pixel is given as text "
    "coordinates in the question, in the window the model sees.",
    "query": "Ablation `query`: no localisation stage; the model sees a 112x84 window of the unified image centred "
    "on the query pixel, in training and evaluation (the checkpoint saves that window, so every tool asks it so).",
}


Ablation = Literal["focal", "marker", "query"]
ABLATIONS: tuple[str, ...] = get_args(Ablation)
ABLATION_HELP = (
    "None (full method), 'focal' (no unification), 'marker' (text coordinates, no marker, no stage 1) or 'query' "
    "(windows centred on the query pixel in training and evaluation, no stage 1; the checkpoint saves that window, "
    "so the predictor asks it the same way)."
)
CROP_HELP = (
    "Model window: 'paper' (training crops of random size centred on the principal point, the whole image in "
    "evaluation), 'principal' (a fixed 112x84 principal window) or 'query' (centred on the query pixel; set by "
    "`--ablation query`)."
)


@dataclass
class DemoArguments:
    """Options of `depthlm demo` (defaults: the full demo, both stages; `--fast` overrides the sizes with `FAST`)."""

    output_dir: str = field(default="demo_output", metadata={"help": "Folder for the report, pictures and model."})
    fast: bool = field(default=False, metadata={"help": "Smoke mode (~20 s): a few scenes and steps."})
    ablation: Ablation | None = field(default=None, metadata={"help": ABLATION_HELP})
    seed: int = field(default=0, metadata={"help": "Seed of scenes, weights and row order."})
    model_type: str = field(
        default="qwen2_5_vl",
        metadata={
            "help": "VLM family of the tiny model (a `depthlm_hf.models.FAMILIES` key, e.g. qwen3_vl, gemma3). "
            "The width, depth and rope flags shape qwen2_5_vl; other families take `tiny_vlm`'s widths."
        },
    )
    train_scenes: int = field(default=400, metadata={"help": "Training scenes (each gives several queries)."})
    points_per_scene: int = field(default=32, metadata={"help": "Query pixels per training scene."})
    eval_scenes: int = field(default=300, metadata={"help": "Held-out scenes (one query each)."})
    localisation_steps: int = field(
        default=1200, metadata={"help": "Stage-1 optimizer steps (task 'marker_row'); 0 skips the stage."}
    )
    max_steps: int = field(default=1200, metadata={"help": "Stage-2 (depth) optimizer steps."})
    batch_size: int = field(default=32, metadata={"help": "Queries per step."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak learning rate (cosine, 10%% warmup)."})
    curve_every: int = field(default=100, metadata={"help": "Steps between learning-curve points."})
    curve_scenes: int = field(default=50, metadata={"help": "Held-out scenes per learning-curve point."})
    hidden_size: int = field(default=128, metadata={"help": "Text model width."})
    num_layers: int = field(default=2, metadata={"help": "Text model layers."})
    vision_hidden_size: int = field(default=64, metadata={"help": "Vision tower width."})
    vision_depth: int = field(default=2, metadata={"help": "Vision tower blocks."})
    rope_theta: float = field(default=10000.0, metadata={"help": "Rope base of the text model."})
    vision_rope_theta: float = field(default=10000.0, metadata={"help": "Rope base of the vision tower."})
    crop: Crop = field(default="paper", metadata={"help": CROP_HELP})
    cue: str = field(
        default="texture",
        metadata={
            "help": "Scene look: 'texture' (shaded checkered ground) or 'clean' (grey level = log-distance, so "
            "the pixels at the marker tell the distance; see docs/demo.md)."
        },
    )
    marker_shape: str = field(
        default="arrow", metadata={"help": "'arrow' (the paper's), 'circle' (a ring around the pixel) or 'cross'."}
    )
    marker_size: int = field(default=8, metadata={"help": "Arrow shaft / ring radius [px] in the 112x84 model image."})
    marker_thickness: int = field(default=2, metadata={"help": "Marker line width [px]."})
    point_cloud_points: int = field(default=300, metadata={"help": "Grid queries of the point-cloud image."})
    threads: int = field(
        default=1,
        metadata={"help": "torch CPU threads (1: on a shared 2-core machine two threads ran a step 10-30x slower)."},
    )

    def __post_init__(self) -> None:
        check_dataclass_choices(self)  # `ablation` and `crop`, also when built in code or from a YAML file
        get_family(self.model_type)  # a ValueError listing the registered families
        if self.fast:
            for name, value in FAST.items():
                setattr(self, name, value)
        if self.ablation == "query":
            self.crop = "query"
        if self.ablation in ("query", "marker"):  # no marker to find, or the marker always at the centre
            self.localisation_steps = 0

    @property
    def mode(self) -> str:
        """The scenes' mode (`depthlm_hf.demo.data.Mode`): the "query" ablation is the full method's mode."""
        return self.ablation if self.ablation in ("focal", "marker") else "full"

    @property
    def name(self) -> str:
        """The run's name in `DESCRIPTIONS`."""
        return self.ablation or "full"


FAST: dict[str, Any] = {
    "train_scenes": 24,
    "points_per_scene": 8,
    "eval_scenes": 24,
    "localisation_steps": 30,
    "max_steps": 60,
    "batch_size": 8,
    "curve_every": 30,
    "curve_scenes": 8,
    "point_cloud_points": 24,
}
"""What `--fast` sets: enough to run every stage and write every artifact, not to learn."""

EVAL_BATCH_SIZE = 64
"""Queries per `generate` call of the held-out evaluation (`DepthLMPredictor(batch_size=...)`)."""


TRAINING_WINDOWS = {
    "paper": "principal-point crops of random size (112-224 x 84-168 px, multiples of 28)",
    "principal": "the 112x84 crop centred on the principal point",
    "query": "the 112x84 window centred on the query pixel",
}


def _card_info(args: DemoArguments, processor, training_args, metrics: dict[str, Any]) -> ModelCardInfo:
    """The demo model's card: a random tiny init trained on the demo's synthetic scenes, its held-out figures."""
    figures = {k: float(metrics[k]) for k in CARD_METRICS if k in metrics and math.isfinite(metrics[k])}
    crop = {"training windows": TRAINING_WINDOWS[args.crop]}
    if args.localisation_steps:
        crop["stage 1"] = f"{args.localisation_steps} steps of task 'marker_row' on the 112x84 principal window"
    return ModelCardInfo(
        base_model=f"random init (depthlm_hf tiny {get_family(args.model_type).name}, seed {args.seed})",
        datasets={f"depthlm demo synthetic ground scenes ({args.train_scenes} scenes, seed {args.seed})": 1.0},
        unified_focal_length=processor.unified_focal_length,
        focal_mode=processor.focal_mode,
        marker=dict(processor.marker),
        crop=crop,
        window=processor.window,
        recipe=recipe_from_args(training_args),
        eval_results={"demo held-out scenes": figures} if figures else {},
        license="apache-2.0",
    )


def _training_args(args: DemoArguments, output_dir: Path, max_steps: int) -> DepthLMSFTConfig:
    return DepthLMSFTConfig(
        output_dir=str(output_dir / "trainer"),
        max_steps=max_steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=0.01,
        max_grad_norm=1.0,
        logging_steps=args.curve_every,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=args.seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=False,
    )


def _train_stage(args, model, processor, rows, bank, task: str, max_steps: int, output_dir: Path) -> dict[str, Any]:
    """One SFT stage of `max_steps` on `rows`, its held-out learning curve of `task`; wall and CPU seconds."""
    wall, cpu = time.time(), time.process_time()
    curve = LearningCurve(processor, bank, args.mode, args.curve_every, args.curve_scenes, EVAL_BATCH_SIZE, task)
    trainer = SFTTrainer(
        model=model,
        args=_training_args(args, output_dir, max_steps),
        data_collator=AnswerOnlyCollator(processor=processor, completion_only_loss=True),
        train_dataset=index_dataset(max_steps * args.batch_size, rows, "sft"),
        processing_class=processor,
        callbacks=[curve],
    )
    trainer.train()
    return {
        "trainer": trainer,
        "learning_curve": curve.points,
        "wall_seconds": time.time() - wall,
        "cpu_seconds": time.process_time() - cpu,
    }


def held_out_scenes(args: DemoArguments, processor: DepthLMProcessor) -> SceneBank:
    """The held-out scenes of a run with `args`: `args.eval_scenes`, one query each, depth maps kept.

    Seeded apart from the training scenes (`args.seed + 10_000`), so a saved run can be re-evaluated.
    """
    spec = DemoScenes(crop=args.crop, cue=args.cue)
    return render_bank(spec, processor, args.eval_scenes, 1, args.seed + 10_000, args.mode, True, "held-out scenes")


def _point_cloud(predictor: DepthLMPredictor, bank: SceneBank, mode: str, scene: int, num_points: int):
    """Grid queries over held-out `scene`'s principal window, answered by `predictor`, back-projected with its camera.

    Returns the cloud (pixels on the canvas) and the true (M, 3) [m] points of the asked pixels.
    """
    camera, depth = bank.intrinsics[scene], bank.depth[scene]
    w, h = bank.size
    fits = window_markable(predictor.processor, w, h)
    fits &= np.isfinite(depth) & (depth <= DemoScenes().distance[1])  # the trained range
    pixels, shape = query_grid(camera, num_points, fits)
    ask = np.flatnonzero(fits[pixels[:, 1], pixels[:, 0]])  # grid pixels on the sky are not asked
    queries = bank.subset([scene] * len(ask), pixels[ask])
    values = answer(predictor, queries, [(i, 0) for i in range(len(ask))], mode).values
    distance = np.full(len(pixels), np.nan)
    distance[ask] = [np.nan if v is None or v <= 0 else v for v in values]
    ok = np.isfinite(distance)
    points = np.full((len(pixels), 3), np.nan)
    points[ok] = backproject(pixels[ok], distance[ok], camera)
    colors = bank.canvas[scene][pixels[:, 1], pixels[:, 0]].astype(np.uint8)
    truth = backproject(pixels[ask], queries.distance[:, 0], camera)
    cloud = PointCloud(pixels, distance, points, colors, np.where(ok, 1.0, np.nan), camera, shape)
    return cloud, truth


def run(args: DemoArguments, command: str = "depthlm demo") -> dict[str, Any]:
    """The whole demo; returns the report dict (also written to `args.output_dir`)."""
    start, cpu_start = time.time(), time.process_time()
    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    mode = args.mode
    spec = DemoScenes(crop=args.crop, cue=args.cue)

    marker = {"shape": args.marker_shape, "size": args.marker_size, "thickness": args.marker_thickness}
    window = processor_window(spec.crop, mode, (spec.width, spec.height))
    processor = demo_processor(spec.width, spec.height, spec.unified_focal, marker, args.model_type, window)
    train_bank = render_bank(
        spec, processor, args.train_scenes, args.points_per_scene, args.seed, mode, desc="training scenes"
    )
    eval_bank = held_out_scenes(args, processor)
    constants = constant_baselines(eval_bank.distance[:, 0])

    model = build_model(
        args.seed,
        processor,
        args.hidden_size,
        args.num_layers,
        args.vision_hidden_size,
        args.vision_depth,
        args.rope_theta,
        args.vision_rope_theta,
        args.model_type,
    )
    report: dict[str, Any] = {}
    if args.localisation_steps:
        # Stage 1: find the marker (its row in the principal window), no depth label; saved as a warm start.
        rows = LocalisationRows(train_bank, processor, mode, args.seed + 1)
        stage = _train_stage(args, model, processor, rows, eval_bank, "marker_row", args.localisation_steps, output_dir)
        model.save_pretrained(output_dir / "localisation")
        processor.save_pretrained(output_dir / "localisation")
        located = DepthLMPredictor(model, processor, EVAL_BATCH_SIZE, show_progress=False)
        row_metrics = evaluate(located, eval_bank, mode, task="marker_row")["metrics"]
        model.train()
        report["localisation"] = {
            "row_delta1": row_metrics["delta1"],
            "row_abs_rel": row_metrics["abs_rel"],
            "row_best_constant_delta1": constant_baselines(stage_labels(eval_bank, "marker_row"))[
                "best_constant_delta1"
            ],
            "steps": args.localisation_steps,
            "learning_curve": stage["learning_curve"],
            "wall_seconds": stage["wall_seconds"],
            "cpu_seconds": stage["cpu_seconds"],
        }
    stage = _train_stage(
        args,
        model,
        processor,
        TrainingRows(train_bank, processor, mode, args.seed),
        eval_bank,
        "distance",
        args.max_steps,
        output_dir,
    )
    model.save_pretrained(output_dir / "model")
    processor.save_pretrained(output_dir / "model")

    # Evaluated as any user would: the saved checkpoint through the public predictor.
    predictor = DepthLMPredictor.from_pretrained(output_dir / "model", device="cpu", batch_size=EVAL_BATCH_SIZE)
    result = evaluate(predictor, eval_bank, mode, progress=True)
    metrics = result["metrics"]
    write_model_card(output_dir / "model", _card_info(args, processor, stage["trainer"].args, metrics))
    write_held_out(eval_bank, output_dir / HELD_OUT, processor.unified_focal_length)

    shown = list(range(min(8, args.eval_scenes)))
    plot_examples(
        [model_image(eval_bank, s, 0, mode, processor.marker_style) for s in shown],
        eval_bank.distance[shown, 0],
        [result["predictions"][s] for s in shown],
        output_dir / "examples.png",
    )
    plot_learning_curve(stage["learning_curve"], constants, output_dir / "learning_curve.png")
    cloud, truth = _point_cloud(predictor, eval_bank, mode, 0, args.point_cloud_points)
    cloud.save_ply(output_dir / "point_cloud.ply")
    plot_point_cloud(cloud, truth, eval_bank.canvas[0], output_dir / "point_cloud.png")

    parse_rate = 1.0 - metrics["parse_failure_rate"]
    report = {
        "mode": args.name,
        "description": DESCRIPTIONS[args.name],
        "model_delta1": metrics["delta1"],
        "model_abs_rel": metrics["abs_rel"],
        "parse_rate": parse_rate,
        **constants,
        "bar_met": bool(metrics["delta1"] >= 0.5 and metrics["delta1"] >= 2 * constants["best_constant_delta1"]),
        "learning_curve": stage["learning_curve"],
        **report,
        "depth_stage": {
            "steps": args.max_steps,
            "wall_seconds": stage["wall_seconds"],
            "cpu_seconds": stage["cpu_seconds"],
        },
        "metrics": metrics,
        "predictions": result["predictions"],
        "num_eval": args.eval_scenes,
        "num_train_scenes": args.train_scenes,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "scenes": asdict(spec),
        "arguments": asdict(args),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} thread(s)",
        "command": command,
        "wall_seconds": time.time() - start,
        "cpu_seconds": time.process_time() - cpu_start,
    }
    write_report(output_dir, report)
    return report
