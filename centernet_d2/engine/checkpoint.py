"""``SafeCheckpointer``: Detectron2's checkpointer with atomic writes, ``weights_only`` loading and
a clear error for a checkpoint of another model."""

import inspect
import os
import pickle
import zipfile

import torch
from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["SafeCheckpointer"]

_HAS_WEIGHTS_ONLY = "weights_only" in inspect.signature(torch.load).parameters


class SafeCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that

    * writes every file (checkpoints and ``last_checkpoint``) to a temporary name in the same
      folder, syncs it and renames it into place, so a process killed at any moment leaves the
      previous file whole;
    * loads ``.pth`` files with ``torch.load(weights_only=True)`` where torch has it, so loading
      never runs code stored in the file (Detectron2's ``.pkl`` model-zoo files are pickles and
      are read as Detectron2 reads them);
    * raises ``ValueError`` naming the file when a checkpoint shares no parameter with the model,
      and ``FileNotFoundError`` naming a local file that does not exist;
    * keeps the model's ``class_names`` (if it has them) in every checkpoint, and gives a model
      without names those of the checkpoint it loads, if they are as many as its classes;
    * fine-tuning: the tensors whose shape differs from the checkpoint's (a model of another
      class or keypoint count than the checkpoint's: the class-dependent layers) keep their
      initialisation, and one log line names them with both shapes, in place of Detectron2's
      warning per tensor.
    """

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        names = getattr(self._bare_model, "class_names", None)
        if names:
            data["class_names"] = list(names)
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info(f"Saving checkpoint to {path}")
        self._write_atomically(path, lambda f: torch.save(data, f), "wb")
        self.tag_last_checkpoint(os.path.basename(path))

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        path = os.path.join(self.save_dir, "last_checkpoint")
        self._write_atomically(path, lambda f: f.write(last_filename_basename), "w")

    @staticmethod
    def _write_atomically(path, write, mode):
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, mode) as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def _load_file(self, filename):
        if not filename.endswith(".pth") or not _HAS_WEIGHTS_ONLY:
            return super()._load_file(filename)
        with open(filename, "rb") as f:
            legacy_pickle = f.read(1) == b"\x80"  # torch.save before its zip format
        if not (zipfile.is_zipfile(filename) or legacy_pickle):
            raise ValueError(f"cannot read checkpoint {filename}: it was not written by torch.save")
        try:
            loaded = torch.load(filename, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError) as e:  # not a torch file, or a truncated one
            raise ValueError(f"cannot read checkpoint {filename}: {e}") from e
        except pickle.UnpicklingError as e:
            raise ValueError(
                f"checkpoint {filename} holds Python objects besides tensors and numbers, so it "
                "is not loaded (loading could run code stored in it). Save only state_dicts, or "
                f"re-save it with torch.save after checking its source. ({e})"
            ) from e
        return loaded if "model" in loaded else {"model": loaded}

    def _load_model(self, checkpoint):
        ours = set(self.model.state_dict())
        theirs = set(checkpoint["model"])
        if theirs and not checkpoint.get("matching_heuristics") and not ours & theirs:
            example = sorted(theirs)[:3]
            raise ValueError(
                f"checkpoint {getattr(self, '_loading', 'given')} shares no parameter with this "
                f"{type(self.model).__name__} (its keys look like {example}): it was made for "
                "another model. Check MODEL.WEIGHTS and MODEL.META_ARCHITECTURE / BACKBONE.NAME."
            )
        incompatible = super()._load_model(checkpoint)
        if not incompatible.incorrect_shapes:
            return incompatible
        fresh = [key for key, _, _ in incompatible.incorrect_shapes]
        shapes = ", ".join(
            f"{key} {tuple(theirs)} -> {tuple(ours)}"
            for key, theirs, ours in incompatible.incorrect_shapes
        )
        self.logger.info(
            f"Fine-tuning from {getattr(self, '_loading', 'the checkpoint')}: re-initialised "
            f"{len(fresh)} tensor(s) whose shape differs from the checkpoint's (another class or "
            f"keypoint count: checkpoint -> model): {shapes}"
        )
        missing = [k for k in incompatible.missing_keys if k not in fresh]
        return incompatible._replace(missing_keys=missing, incorrect_shapes=[])

    @property
    def _bare_model(self):
        return getattr(self.model, "module", self.model)  # DistributedDataParallel's model

    def load(self, path, *args, **kwargs):
        if path and "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(
                f"checkpoint {path} not found; set MODEL.WEIGHTS to a checkpoint file you have "
                '(or to "" to start from random weights)'
            )
        self._loading = path
        checkpoint = super().load(path, *args, **kwargs)
        names = checkpoint.get("class_names")
        model = self._bare_model
        count = getattr(model, "num_classes", len(names or ()))
        if (
            names
            and hasattr(model, "class_names")
            and not model.class_names
            and len(names) == count
        ):
            model.class_names = list(names)
        return checkpoint
