"""Training a candidate: the SAM / ASAM step, the trial's regime and what they rest on.

    config.py       TrainingConfig: every training setting, TensorFlow-free
    sam.py          SAMModel: a keras.Model whose train_step runs SAM or ASAM
    regime.py       TrainingRegime: schedule, NaN guard, BatchNorm recalibration
    batchnorm.py    FusedBatchNormalization, recalibrate_batch_norm
    optimizers.py   FusedSGD: Keras' SGD on fused TensorFlow kernels
    tracing.py      one trace per training step, Grappler, released gradient registrations
    losses.py       integer-label cross-entropy with label smoothing

The public names are importable from `flatnas_tf` itself.
"""
