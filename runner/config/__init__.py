"""Configuration: the Hydra config source, typed settings and the plugin registry."""
