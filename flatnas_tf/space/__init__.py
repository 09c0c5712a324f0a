"""Search spaces: the default space, its weight-sharing supernet and the supernet's training.

    hypermodel.py   FlatNASHyperModel (made to be subclassed), ResNetHyperModel, TrainingSettings
    supernet.py     Supernet: the space as one elastic network; select, candidate, extract
    sandwich.py     train_supernet: sandwich-rule training, resumable per epoch
    resizing.py     Resizing that leaves the training mode of the layers after it alone

The public names are importable from `flatnas_tf` itself.
"""
