"""Training: TRL configs, rewards and model cards (trainers and setup live in `training.trainers`/`training.setup`)."""
