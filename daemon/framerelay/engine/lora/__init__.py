"""Motion LoRA (I2VEdit paper, section 4.1): a peft LoRA on every Linear of SVD's temporal
transformer blocks, trained on one clip's cached latents with SVD's EDM objective.

- `adapter`: the adapter itself: inject, initialise, save, load, switch, remove; seeded dropout.
- `schedule`: how it is trained: the hyper-parameters and the noise levels drawn.
- `trainer`: the batch, the objective (`engine.edm`'s preconditioning) and the training loop.
- `checkpoints`: resumable training state, written atomically.

Deliberate differences from the official code are listed in the docstrings of
`inject_motion_lora`, `SigmaSchedule` and `make_added_time_ids`.
"""

from framerelay.engine.lora.adapter import (
    ADAPTER_FORMAT,
    MOTION_ADAPTER,
    MOTION_LORA_TARGETS,
    DropoutClock,
    SeededDropout,
    has_motion_lora,
    initialise_motion_lora,
    inject_motion_lora,
    load_motion_lora,
    motion_lora_parameters,
    motion_lora_rank,
    motion_lora_target_names,
    remove_motion_lora,
    save_motion_lora,
    seed_dropout,
    set_motion_lora_enabled,
)
from framerelay.engine.lora.checkpoints import latest_checkpoint
from framerelay.engine.lora.schedule import LoraTrainingParams, SigmaSchedule
from framerelay.engine.lora.trainer import (
    TrainingBatch,
    TrainingResult,
    denoising_loss,
    make_added_time_ids,
    train_motion_lora,
)

__all__ = [
    "ADAPTER_FORMAT",
    "MOTION_ADAPTER",
    "MOTION_LORA_TARGETS",
    "DropoutClock",
    "LoraTrainingParams",
    "SeededDropout",
    "SigmaSchedule",
    "TrainingBatch",
    "TrainingResult",
    "denoising_loss",
    "has_motion_lora",
    "initialise_motion_lora",
    "inject_motion_lora",
    "latest_checkpoint",
    "load_motion_lora",
    "make_added_time_ids",
    "motion_lora_parameters",
    "motion_lora_rank",
    "motion_lora_target_names",
    "remove_motion_lora",
    "save_motion_lora",
    "seed_dropout",
    "set_motion_lora_enabled",
    "train_motion_lora",
]
