from .visualize import heatmap_overlay, load_metrics, plot_training_curves

__all__ = ["heatmap_overlay", "load_metrics", "plot_training_curves"]
