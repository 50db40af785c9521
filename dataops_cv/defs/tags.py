"""Names of the run tags, asset tags and metadata keys that carry isolation and publishing."""

# Set by whoever launches a run (CLI, tests) to main's commit at launch; absent for runs launched
# from the UI or the daemon, whose first step then fixes the base at main's head.
BASE_COMMIT_TAG = "dataops-cv/base-commit"
PUBLISH_STATUS_TAG = "dataops-cv/publish-status"
MAIN_COMMIT_TAG = "dataops-cv/main-commit"
RUN_BRANCH_TAG = "dataops-cv/run-branch"
# The lakeFS tags a publish put on the merge commit (training sets), comma-separated.
TAGS_TAG = "dataops-cv/lakefs-tags"
# Asset (and job) tag naming the branch an asset's runs publish to: "labels" (the resource's
# labels branch) for labeling state; absent means main.
PUBLISHES_TO_TAG = "dataops-cv/publishes-to"
LABELS_TARGET = "labels"
LABELS_TAGS = {PUBLISHES_TO_TAG: LABELS_TARGET}
# Run tag pinning a labeled_annotations run to one commit of the labels branch.
LABELS_COMMIT_TAG = "dataops-cv/labels-commit"
# Materialization metadata naming the lakeFS tag to put on the run's merge commit (training sets).
PUBLISH_TAG_METADATA = "trainset_tag"
