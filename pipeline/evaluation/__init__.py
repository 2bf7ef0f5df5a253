"""Model evaluation: next-action metrics on held-out eval cases, task success in the simulator
sandbox (pass^k), an HTML report comparing models, and the promotion rule.

Plain data in and out; the only I/O is `report.write_report`. It sits above the simulator
(the sandbox replays its tasks), so it is not part of `pipeline.core`, which the simulator
builds on; import-linter holds it to the same rules (no services, no torch). Typical use
(the asset owns models, MLflow and paths; the cases come from the release's Parquet or
`pipeline.shell.marts.load_eval_cases`, the policies from `pipeline.learning.engine_policy`):

    base = evaluate_model("base", engine_policy(base_dir), cases, k=3)
    challenger = evaluate_model("challenger", engine_policy(new_dir), cases, k=3)
    incumbent, incumbent_name = incumbent_for(champion_result_or_None, base)
    decision = decide_promotion(challenger, incumbent, incumbent_name, "action_accuracy", 0.02, 0.05, "action_accuracy")
    html_path = write_report(combine({"base": base, "champion": ..., "challenger": challenger}, decision), out_dir)
"""
from pipeline.evaluation.cases import EvalCase, load_case, predict_cases, task_id, task_specs
from pipeline.evaluation.metrics import CaseScore, confusion, score_case, summarize
from pipeline.evaluation.policy import ModelPolicy, Policy, ScriptedPolicy, scripted_factory
from pipeline.evaluation.promotion import Decision, decide_promotion, incumbent_for
from pipeline.evaluation.report import combine, model_result, render_html, write_report
from pipeline.evaluation.run import evaluate_model
from pipeline.evaluation.sandbox import SimulatedUser, Trial, evaluate_sandbox, run_trial

__all__ = [
    "CaseScore", "Decision", "EvalCase", "ModelPolicy", "Policy", "ScriptedPolicy", "SimulatedUser", "Trial",
    "combine", "confusion", "decide_promotion", "evaluate_model", "evaluate_sandbox", "incumbent_for",
    "load_case", "model_result", "predict_cases", "render_html", "run_trial",
    "score_case", "scripted_factory", "summarize", "task_id", "task_specs",
    "write_report",
]
