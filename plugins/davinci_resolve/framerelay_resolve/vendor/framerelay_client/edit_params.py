"""Generated from protos/ by protos/generate.py; do not edit.

EditParams of specs.proto: each engine parameter a job may set besides its preset, by its
snake_case name, and its JSON type. The daemon's parameter table (framerelay/engine/params.py,
docs/parameters.md) holds their ranges, defaults and help.
"""

PARAMS: dict[str, type] = {
    "height": int,
    "width": int,
    "steps": int,
    "window": int,
    "seed": int,
    "min_guidance": float,
    "max_guidance": float,
    "beta1": float,
    "beta2": float,
    "attention_matching": bool,
    "lora_steps": int,
    "lora_rank": int,
    "overlap": int,
    "skip_interval": bool,
    "fps_id": int,
    "motion_bucket_id": int,
    "noise_aug_strength": float,
    "sarp_threshold": float,
    "sarp_alpha": float,
    "mask_threshold": float,
    "mask_threshold_last": float,
    "lora_lr": float,
    "lora_dropout": float,
    "lora_height": int,
    "lora_width": int,
}
