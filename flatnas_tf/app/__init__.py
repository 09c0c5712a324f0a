"""The application layer: what the `flatnas-tf` commands do, as functions a Python user can call.

    runs        a search's output directory and its `run.json` (no TensorFlow)
    models      a search's library objects rebuilt from its `run.json`; its trials' exports
    training    one architecture trained as a search's trial is, then saved
    evaluation  a model's test accuracy and OOD table, written beside it
    finishing   after a search's last trial: report, the front's OOD, exports
    reporting   a search's report rebuilt, under its alpha or another (no TensorFlow)
    split       DataSplit: a data set and its split, as runs record them
    search      SearchConfig and run_search: a search from a typed configuration
    supernet    the weight-sharing supernet a search runs through, trained or resumed

The CLI (`flatnas_tf.cli`) parses options, calls these and prints.
"""
