"""Jobs: the pipeline for one capture day, and the labeling jobs (some publish to the labels
branch)."""

import dagster as dg

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.tags import LABELS_TARGET, PUBLISHES_TO_TAG

DATAOPS_JOB = "dataops_job"
LABEL_PULL_JOB = "label_pull_job"
LABELING_TASKS_JOB = "labeling_tasks_job"
LABELED_ANNOTATIONS_JOB = "labeled_annotations_job"
PRELABEL_JOB = "prelabel_job"

LABELS_BRANCH_ASSETS = dg.AssetSelection.tag(PUBLISHES_TO_TAG, LABELS_TARGET)

dataops_job = dg.define_asset_job(
    name=DATAOPS_JOB,
    selection=dg.AssetSelection.all() - LABELS_BRANCH_ASSETS,
    partitions_def=day_source_partitions,
    description="Materialize one capture day end to end on its own lakeFS branch; publish on success.",
)

label_pull_job = dg.define_asset_job(
    name=LABEL_PULL_JOB,
    selection=dg.AssetSelection.assets("label_snapshot"),
    tags={PUBLISHES_TO_TAG: LABELS_TARGET},
    description="Pull what changed in Label Studio since the last pull; publish to the labels "
    "branch.",
)

labeling_tasks_job = dg.define_asset_job(
    name=LABELING_TASKS_JOB,
    selection=dg.AssetSelection.assets("labelstudio_tasks"),
    partitions_def=day_source_partitions,
    tags={PUBLISHES_TO_TAG: LABELS_TARGET},
    description="Make Label Studio tasks for a published capture day.",
)

labeled_annotations_job = dg.define_asset_job(
    name=LABELED_ANNOTATIONS_JOB,
    selection=dg.AssetSelection.assets("labeled_annotations").downstream(),
    partitions_def=day_source_partitions,
    description="Rebuild a day's labeled annotations (and what depends on them) from one labels "
    "commit; requested by labeled_commit_sensor.",
)

prelabel_job = dg.define_asset_job(
    name=PRELABEL_JOB,
    selection=dg.AssetSelection.assets("prelabels", "audit_queue"),
    partitions_def=day_source_partitions,
    tags={PUBLISHES_TO_TAG: LABELS_TARGET},
    description="Train the pre-label model on every labeled frame, send pre-labels for a day's "
    "unlabeled tasks to Label Studio, and rank the day's frames for human audit.",
)
