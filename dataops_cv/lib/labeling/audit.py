"""The audit queue: a day's frames ranked for human review, most urgent first."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from dataops_cv.lib.labeling.qa import TaskAgreement

QUEUE_SCHEMA = pa.schema([
    ("rank", pa.int64()), ("ls_task_id", pa.int64()), ("image_sha256", pa.string()),
    ("priority", pa.float64()), ("reasons", pa.string()), ("uncertainty", pa.float64()),
    ("agreement", pa.float64()), ("url", pa.string()),
])


def audit_queue_rows(tasks: Mapping[str, tuple[int, int]], uncertain: Mapping[str, float],
                     agreements: Mapping[str, TaskAgreement], labelstudio_url: str) -> list[dict]:
    """Frames where the model is unsure or annotators disagree, ranked by priority.

    Args:
        tasks: image sha256 -> (Label Studio task id, project id); frames without a task are left
            out (nobody can review them).
        uncertain: image sha256 -> the pre-label model's uncertainty.
        agreements: image sha256 -> annotator agreement of tasks two people labeled.

    Returns:
        ``QUEUE_SCHEMA`` rows: priority is the uncertainty or 1 - agreement, whichever is higher;
        ties go by sha256, so the same inputs give the same ranks.
    """
    queue = []
    for sha in sorted(set(uncertain) | {s for s, a in agreements.items() if a.disagreement}):
        if sha not in tasks:
            continue
        reasons, priority = [], 0.0
        if sha in uncertain:
            reasons.append("model_uncertain")
            priority = uncertain[sha]
        agreement = agreements.get(sha)
        if agreement is not None and agreement.disagreement:
            reasons.append("annotators_disagree")
            priority = max(priority, 1.0 - agreement.agreement)
        task_id, project = tasks[sha]
        queue.append({"ls_task_id": task_id, "image_sha256": sha, "priority": round(priority, 6),
                      "reasons": ",".join(reasons), "uncertainty": uncertain.get(sha),
                      "agreement": agreement.agreement if agreement else None,
                      "url": f"{labelstudio_url}/projects/{project}/data?task={task_id}"})
    queue.sort(key=lambda q: (-q["priority"], q["image_sha256"]))
    for rank, q in enumerate(queue, start=1):
        q["rank"] = rank
    return queue
