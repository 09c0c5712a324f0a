"""KerasTuner integration for FlatNAS, installed as `flatnas_tf.tuners`.

The NSGA-II oracle and the FlatNAS tuner arrive here; import this package only
as `flatnas_tf.tuners`.
"""

__all__: list[str] = []
