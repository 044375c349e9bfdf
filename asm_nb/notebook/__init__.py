"""The notebook surface: magics, widgets, frames, plots, display."""
