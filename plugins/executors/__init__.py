"""The built-in executors, one module each, registered under ``runner.executors``.

Adding an executor means reading one Protocol and one example: ``runner.api.ItemCall``
(what ``map`` is given to call for each item, and what else it offers) and
:mod:`~runner_plugins.executors.thread`. ``plumbing`` holds what the executors share
(reading the source, chunk sizes, sending items and outcomes to other processes); an
executor that runs items elsewhere keeps what runs there in its own module
(``process_worker``, ``dask_worker``) and the driver in its executor's (the
``dask`` driver's count of starts lost with its workers: ``dask_losses``).
Nothing is imported here: listing the plugins imports no executor's dependencies.
"""
