"""CenterNet ("Objects as Points", Zhou et al. 2019) as a Detectron2 plugin.

Importing this package registers the ``CenterNet`` meta-architecture, its backbones and the built-in
datasets into Detectron2's registries. Use :func:`add_centernet_config` on a ``get_cfg()`` before
merging a CenterNet YAML file. Import it before Detectron2 to keep Detectron2's import quiet.
"""

import warnings

try:
    with warnings.catch_warnings():
        # Detectron2 scripts two box-regression helpers when it is imported, which torch 2.9+
        # answers with FutureWarnings nobody using Detectron2 can act on: import it quietly.
        warnings.filterwarnings("ignore", r"`torch\.jit\.script", FutureWarning)
        import detectron2.modeling  # noqa: F401
except ImportError as e:
    # Without Detectron2 only ``centernet_d2.deploy`` (exported models) is usable.
    _MISSING = ImportError(
        "centernet_d2 needs Detectron2, which is not importable here "
        f"({e}). Run the set-up from the repository root: `bash tools/setup_env.sh` "
        "(it creates .venv and installs Detectron2 unless you already have it), then use "
        ".venv/bin/python or activate .venv. Exported models run without it: "
        "centernet_d2.deploy."
    )

    def __getattr__(name):
        raise _MISSING

else:
    from . import data, modeling  # noqa: F401  (registers models, backbones and datasets)
    from .config import add_centernet_config  # noqa: F401

__version__ = "0.1.0"

__all__ = ["add_centernet_config", "__version__"]
