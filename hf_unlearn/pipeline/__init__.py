"""The job pipeline on top of the library: a job's arguments and run (`job`), its YAML config + flags (`config`), its
data (`data`), its models (`models`, `cache`, `recipes`), its checks (`checks`) and what class removal adds
(`class_removal`). `hf-unlearn`, the examples and the benchmarks sit on it."""
