"""rkdsc_train: stage orchestration over rkdsc_core (teacher → store → search → stage1 → stage2 →
export; one module per stage in `stages/`) and the YAML configs in `configs/`."""
