"""The training stages, one module each; `rkdsc_train.pipeline.STAGES` names them in order."""
