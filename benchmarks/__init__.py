"""The benchmark of ``tools/benchmark.py``: CenterNet against Detectron2's RetinaNet and FCOS.

A developer tool, not part of the installed ``centernet_d2`` package. One concern per module:

    timing   phase timer, median and percentiles, interleaved repeats
    peers    Detectron2's RetinaNet and FCOS built like a CenterNet config, and their stages
    runs     the inference, training-step and target-building runs, memory, FLOPs, and
             :func:`~.runs.run_benchmark` (the definition of every number is its docstring)
    report   ratios against the peers, the pass/fail check, markdown table and plot
    peer_training   the RetinaNet peer trained at a CenterNet config's budget
                    (``tools/train_peer.py``, for ``tools/compare_runs.py``)

CenterNet is driven only through its own stage methods (``preprocess_image``, ``run_network``,
``build_targets``, ``losses``, ``inference``); the pass/fail limits are ``LIMITS`` in
``tools/benchmark.py``.
"""
