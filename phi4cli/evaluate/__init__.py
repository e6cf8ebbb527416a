"""Evaluation: benchmark tasks, answer extraction, metrics, the code sandbox, and result tables."""
