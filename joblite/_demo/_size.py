"""How big the demo's data is: ``full`` shows the speed, ``small`` runs in a test."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    """The data sizes one demo run uses, every step reading its own fields."""

    hash_side: int  # the hashed array is hash_side x hash_side float64
    hash_calls: int  # small-argument hashes timed
    model_rows: int  # rows of the dumped model's 500-column coefficient matrix
    vocabulary: int  # entries of the dumped model's vocabulary dict
    images: int  # 128 x 128 images given to the cached functions
    tasks: int  # CPU-bound Parallel tasks
    walk_steps: int  # random-walk steps per task
    shared_rows: int  # rows of the 6,250-column array shared with workers


SIZES: dict[str, Size] = {
    "full": Size(
        hash_side=4096,
        hash_calls=20_000,
        model_rows=2_000,
        vocabulary=10_000,
        images=200,
        tasks=64,
        walk_steps=40_000,
        shared_rows=2_000,
    ),
    "small": Size(
        hash_side=256,
        hash_calls=200,
        model_rows=20,
        vocabulary=100,
        images=4,
        tasks=8,
        walk_steps=1_000,
        shared_rows=20,
    ),
}
