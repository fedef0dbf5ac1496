"""Datasets: MELD annotation files."""
