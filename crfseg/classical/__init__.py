"""Classical gray-level segmentation: split and merge, gray-level rules.

``split_and_merge`` splits an image into homogeneous quadtree blocks and
merges adjacent regions on a region adjacency graph (Horowitz & Pavlidis);
``gray_level_segment`` is its semantic form, where gray-level thresholds
assign a class to every pixel and regions never mix classes.
"""

from crfseg.classical.split_merge import (
    PREDICATES,
    SplitMergeTree,
    estimate_noise_sigma,
    gray_level_segment,
    split_and_merge,
)

__all__ = [
    "PREDICATES",
    "SplitMergeTree",
    "estimate_noise_sigma",
    "gray_level_segment",
    "split_and_merge",
]
