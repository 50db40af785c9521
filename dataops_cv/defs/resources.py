"""Resources, defined once. They hold configuration only; clients are built inside methods."""


import functools

import dagster as dg

from dataops_cv.lib.lakefs_store import LakeFSConfig, LakeFSStore


@functools.cache
def _store(config: LakeFSConfig) -> LakeFSStore:
    # One client (and connection pool) per process and configuration.
    return LakeFSStore(config)


class LakeFSResource(dg.ConfigurableResource):
    """A lakeFS repository: where every run writes (its own branch) and publishes (main)."""

    endpoint: str
    access_key_id: str
    secret_access_key: str
    repository: str = "dataops-cv"
    main_branch: str = "main"
    timeout_s: float = 30.0
    max_attempts: int = 4
    ui_endpoint: str | None = None

    def store(self) -> LakeFSStore:
        return _store(
            LakeFSConfig(
                endpoint=self.endpoint,
                access_key_id=self.access_key_id,
                secret_access_key=self.secret_access_key,
                repository=self.repository,
                timeout_s=self.timeout_s,
                max_attempts=self.max_attempts,
                ui_endpoint=self.ui_endpoint,
            )
        )


def lakefs_resource_from_env() -> LakeFSResource:
    return LakeFSResource(
        endpoint=dg.EnvVar("LAKEFS_ENDPOINT"),
        access_key_id=dg.EnvVar("LAKEFS_ACCESS_KEY_ID"),
        secret_access_key=dg.EnvVar("LAKEFS_SECRET_ACCESS_KEY"),
        repository=dg.EnvVar("LAKEFS_REPOSITORY"),
    )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"lakefs": lakefs_resource_from_env()})
