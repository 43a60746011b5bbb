"""The plugin host: the hooks plugins implement, the pluggy manager that loads them through the ``i2i`` entry
points, and the registry of the components they register."""
