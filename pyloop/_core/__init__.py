"""pyloop's core layer: the only code that touches the C engine in ``csrc/``.

* ``handles`` (Cython): ``Handle``/``TimerHandle`` and their freelists;
* ``loop`` (Cython): ``BaseLoop``, the loop iteration as named steps (timeout, poll,
  expire timers, run ready), fd watches, the thread rules, and the virtual-clock seam
  used by ``pyloop.time``, the executor and the blocking pool;
* ``includes/``: the ``.pxd`` declarations of the C engine and of the CPython calls
  Cython does not declare.

Nothing here imports from the layers above (``_eventloop``, ``_transports``,
``_process``, the toolbox); they build on ``BaseLoop``.  See docs/ARCHITECTURE.md.
"""
