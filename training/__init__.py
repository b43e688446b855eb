"""rkdsc_train: stage orchestration over rkdsc_core (teacher → store → search → stage1 → stage2 →
export) and the YAML configs in `training/configs/`."""
