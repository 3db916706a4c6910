"""CornerNet's gaussian radius as its code computes it, for floats, numpy arrays or tensors alike
(the deploy side draws CenterTrack's previous-frame heatmap without PyTorch)."""

__all__ = ["cornernet_code_radii"]


def cornernet_code_radii(w, h, o: float, sqrt):
    """The three candidate radii of CornerNet's ``gaussian_radius`` (see
    :func:`centernet_d2.modeling.targets.cornernet_paper_radius`, which keeps the smallest) for
    box width ``w`` and height ``h`` at overlap ``o``; ``sqrt`` of the arguments' kind
    (``math.sqrt``, ``np.sqrt``, ``torch.sqrt``)."""
    b1 = h + w
    r1 = (b1 + sqrt(b1**2 - 4 * w * h * (1 - o) / (1 + o))) / 2
    b2 = 2 * (h + w)
    r2 = (b2 + sqrt(b2**2 - 16 * (1 - o) * w * h)) / 2
    b3 = -2 * o * (h + w)
    r3 = (b3 + sqrt(b3**2 - 16 * o * (o - 1) * w * h)) / 2
    return r1, r2, r3
