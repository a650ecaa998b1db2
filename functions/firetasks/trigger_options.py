"""The deployment options the trigger factories pass on to firebase-functions, typed.

firebase-functions takes each trigger's options as keyword arguments typed by an options dataclass
(`firebase_functions.options.FirestoreOptions` for `on_document_written`, and so on) and defines no
TypedDicts for them; these mirror those dataclasses field by field, so that `**options:
Unpack[...]` checks a factory's options as the decorator itself would. A factory sets some fields
itself (the trigger's `document`; the sweeper's `schedule` is a parameter of its own): those are
left out. tests/unit/test_trigger_options.py checks the fields still match firebase-functions'.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from firebase_functions.options import (
    CorsOptions,
    IngressSetting,
    MemoryOption,
    RateLimits,
    RetryConfig,
    SupportedRegion,
    Timezone,
    VpcEgressSetting,
)
from firebase_functions.params import Expression, SecretParam

# The type of `firebase_functions.options.RESET_VALUE`, which restores a platform default; the
# package defines it in a private module only.
from firebase_functions.private.util import Sentinel

__all__ = [
    "DashboardTriggerOptions",
    "RuntimeOptions",
    "SweepTriggerOptions",
    "TaskTriggerOptions",
    "WakeTriggerOptions",
]


class RuntimeOptions(TypedDict, total=False):
    """`firebase_functions.options.RuntimeOptions`: the options of every kind of function."""

    region: SupportedRegion | str | list[SupportedRegion | str] | None
    memory: int | MemoryOption | Expression[int] | Sentinel | None
    timeout_sec: int | Expression[int] | Sentinel | None
    min_instances: int | Expression[int] | Sentinel | None
    max_instances: int | Expression[int] | Sentinel | None
    concurrency: int | Expression[int] | Sentinel | None
    cpu: int | Literal["gcf_gen1"] | Sentinel | None
    vpc_connector: str | Sentinel | None
    vpc_connector_egress_settings: VpcEgressSetting | Sentinel | None
    service_account: str | Sentinel | None
    ingress: IngressSetting | Sentinel | None
    labels: dict[str, str] | None
    secrets: list[str] | list[SecretParam] | Sentinel | None
    enforce_app_check: bool | None
    preserve_external_changes: bool | None


class TaskTriggerOptions(RuntimeOptions, total=False):
    """`firebase_functions.options.FirestoreOptions` but `document`: `task_trigger`'s options."""

    database: str | None
    namespace: str | None


class WakeTriggerOptions(RuntimeOptions, total=False):
    """`firebase_functions.options.TaskQueueOptions`: `wake_trigger`'s options."""

    retry_config: RetryConfig | None
    rate_limits: RateLimits | None
    invoker: str | list[str] | Literal["private"] | None


class SweepTriggerOptions(RuntimeOptions, total=False):
    """`firebase_functions.options.ScheduleOptions` but `schedule`: `sweep_trigger`'s options."""

    timezone: Timezone | Expression[str] | Sentinel | None
    retry_count: int | Expression[int] | Sentinel | None
    max_retry_seconds: int | Expression[int] | Sentinel | None
    max_backoff_seconds: int | Expression[int] | Sentinel | None
    max_doublings: int | Expression[int] | Sentinel | None
    min_backoff_seconds: int | Expression[int] | Sentinel | None


class DashboardTriggerOptions(RuntimeOptions, total=False):
    """`firebase_functions.options.HttpsOptions`: `dashboard_trigger`'s options."""

    invoker: str | list[str] | Literal["public", "private"] | None
    cors: CorsOptions | None
