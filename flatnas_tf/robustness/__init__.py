"""Robustness: flatness under weight perturbations, and accuracy under input corruptions.

    flatness.py          R: accuracy under multiplicative Gaussian weight perturbations
    measurement.py       measure_candidate: the figures a trial records, measured once
    chance.py            is an accuracy clearly above chance? (exact binomial test)
    corruptions.py       batched TensorFlow image corruptions with CIFAR-10-C severities
    frost.py             the frost photographs: found, downscaled as OpenCV does, cropped
    ood.py               accuracy per corruption x severity, mCE, reports
    corrupted_set.py     a data set's corrupted test images, written once and read back
    cifar10_corrupted.py TFDS CIFAR-10-C: names, prepared configs, prepare from the archive

The public names are importable from `flatnas_tf` itself.
"""
