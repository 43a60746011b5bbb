"""The training engine: building a recipe's method and data, the loop, its schedule, the run folder and its
log, checkpoint state, monitors, torchrun and sample grids. It runs any :class:`i2i_core.method.Method`."""
