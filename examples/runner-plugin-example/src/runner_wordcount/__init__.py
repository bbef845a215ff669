"""An example runner plugin: the ``wordcount`` task."""
