"""PEFT fine-tuning on augmented data (grows in a later issue). Today: reading an expand output."""

from __future__ import annotations

from .data import load_training_data

__all__ = ["load_training_data"]
