"""The `flatnas-tf` command line, installed as `flatnas_tf.cli`."""
