"""The trigger factories' typed options are firebase-functions' own, field for field."""

import dataclasses

import pytest
from firebase_functions import options

from firetasks.trigger_options import (
    DashboardTriggerOptions,
    SweepTriggerOptions,
    TaskTriggerOptions,
    WakeTriggerOptions,
)


@pytest.mark.parametrize(("typed", "dataclass", "set_by_factory"), [
    (TaskTriggerOptions, options.FirestoreOptions, {"document"}),
    (WakeTriggerOptions, options.TaskQueueOptions, set()),
    (SweepTriggerOptions, options.ScheduleOptions, {"schedule"}),
    (DashboardTriggerOptions, options.HttpsOptions, set()),
])
def test_a_factory_takes_every_option_of_its_trigger(typed, dataclass, set_by_factory):
    fields = {field.name for field in dataclasses.fields(dataclass)}
    assert typed.__required_keys__ == frozenset()
    assert set(typed.__optional_keys__) == fields - set_by_factory
