"""Full-catalog evaluation: pure metrics, the evaluation protocol and the Markdown/HTML report."""

from foryou.evaluation.protocol import EvaluationResult, evaluate, evaluate_many
from foryou.evaluation.report import ModelReport, write_report

__all__ = ["EvaluationResult", "ModelReport", "evaluate", "evaluate_many", "write_report"]
