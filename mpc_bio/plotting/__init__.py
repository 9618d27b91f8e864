"""Figures: every function takes a result object and an optional matplotlib Axes, computes nothing, returns the Figure."""
