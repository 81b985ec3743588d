"""Image-guided planning: trajectory, placement, the Plan model and its report."""
