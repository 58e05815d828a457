"""Data for unlearning: loading, forget selection and its checks, preprocessing, collators.

This package never imports the trainer.
"""

from .checks import check_disjoint, content_columns, count_shared, require_columns, row_keys
from .collators import CausalLMCollator, ClassificationCollator, ForgetRetainCollator
from .holdout import check_held_out, drop_shared
from .loading import default_data_dir, load_data, read_local_file, read_text_file, rename_to_standard, slice_split
from .preprocessing import QA_TEMPLATE, preprocess_images, tokenize_classification, tokenize_qa
from .selection import (
    UnlearningSplits,
    label_names,
    make_splits,
    read_ids,
    sample_rows,
    select_forget,
    splits_from,
)
from .sources import (
    SOURCES,
    DatasetSpec,
    bundled_sample_dir,
    get_source,
    load_digits,
    load_goemotions,
    load_mnist,
    load_source,
    load_tofu,
    read_idx,
)

__all__ = [
    "QA_TEMPLATE",
    "SOURCES",
    "CausalLMCollator",
    "ClassificationCollator",
    "DatasetSpec",
    "ForgetRetainCollator",
    "UnlearningSplits",
    "bundled_sample_dir",
    "check_disjoint",
    "check_held_out",
    "content_columns",
    "count_shared",
    "default_data_dir",
    "drop_shared",
    "get_source",
    "label_names",
    "load_data",
    "load_digits",
    "load_goemotions",
    "load_mnist",
    "load_source",
    "load_tofu",
    "make_splits",
    "preprocess_images",
    "read_idx",
    "read_ids",
    "read_local_file",
    "read_text_file",
    "rename_to_standard",
    "require_columns",
    "row_keys",
    "sample_rows",
    "select_forget",
    "slice_split",
    "splits_from",
    "tokenize_classification",
    "tokenize_qa",
]
