"""pyloop's core layer: the only code that touches the C engine in ``csrc/``.

* ``handles`` (Cython): ``Handle``/``TimerHandle`` and their freelists;
* ``loop`` (Cython): ``BaseLoop`` and its thread rules, in ``loop.pyx``, built from
  parts included beside it: ``loop_iteration.pxi`` (the iteration as named steps:
  timeout, poll, expire timers, run ready), ``loop_timers.pxi``, ``loop_clock.pxi``
  (virtual time), ``loop_fds.pxi`` (fd watches), ``loop_embed.pxi`` (driving the loop
  from a host's event loop) and ``loop_metrics.pxi`` (the core counters and the stall
  watch's primitives);
* ``clock``: the virtual-clock seam, the one door to a loop's clock for the layers
  above (``pyloop.time``, the executor, ``pyloop.task.spawn_blocking``), and all the
  toolbox may import from here;
* ``metrics``: the counters seam, the one door to a loop's core counters, for
  ``pyloop.monitor``;
* ``includes/``: the ``.pxd`` declarations of the C engine and of the CPython calls
  Cython does not declare.

Nothing here imports from the layers above (``_eventloop``, ``_transports``,
``_process``, the toolbox); they build on ``BaseLoop``.  See docs/ARCHITECTURE.md.
"""
