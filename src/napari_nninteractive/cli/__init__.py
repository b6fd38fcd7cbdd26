"""The command lines: ``nninteractive-segment``, ``nninteractive-eval``, ``nninteractive-download-model``
and ``nninteractive-demo``. Each is a thin layer over ``core``, ``io`` and ``eval``; :func:`.common.guarded`
is their one error guard."""
