"""RetentionPolicy (docs/stores.md, retention and maintenance): defaults, config, validation order and messages."""

from __future__ import annotations

import math

import pytest

from asm_nb import config
from asm_nb.core.errors import AsmError
from asm_nb.persistence.retention import INFINITY, RetentionPolicy


def test_defaults_match_the_table():
    for p in (RetentionPolicy(), RetentionPolicy.new()):
        assert p.max_session_age_days == INFINITY and p.max_completed_session_age_days == 90
        assert p.max_events_per_session == INFINITY and p.max_total_events == INFINITY
        assert p.hard_delete_after_days == 30 and p.archive_before_prune is False and p.archive_store is None
        assert p.exempt_statuses == ["active", "paused"] and p.exempt_tags == ["pinned"]
        assert p.prune_event_types_first == ["message_streamed", "token_usage_updated"]
        assert p.batch_size == 100
        p.validate()


def test_new_reads_config_and_rejects_unknown_options():
    with config.override(retention_max_completed_age_days=7, retention_batch_size=5):
        p = RetentionPolicy.new(hard_delete_after_days=2)
    assert (p.max_completed_session_age_days, p.batch_size, p.hard_delete_after_days) == (7, 5, 2)
    with pytest.raises(AsmError, match="unknown retention option: max_age"):
        RetentionPolicy.new(max_age=3)


def test_infinity_string_and_all_infinite():
    p = RetentionPolicy.new(max_completed_session_age_days="infinity", hard_delete_after_days="Infinity",
                            max_events_per_session=math.inf)
    assert p.max_completed_session_age_days == INFINITY and p.hard_delete_after_days == INFINITY
    p.validate()


@pytest.mark.parametrize("field", ["max_session_age_days", "max_completed_session_age_days", "hard_delete_after_days",
                                   "max_events_per_session", "max_total_events"])
@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "ten"])
def test_limits_rejected(field, bad):
    with pytest.raises(AsmError) as ei:
        RetentionPolicy(**{field: bad}).validate()
    assert ei.value.code == "validation_error"
    assert ei.value.message == f"{field} must be a positive integer or infinity"


def test_validation_order_first_message_wins():
    with pytest.raises(AsmError, match="] max_session_age_days"):
        RetentionPolicy(max_session_age_days=0, batch_size=0).validate()


def test_batch_size_and_archive():
    with pytest.raises(AsmError, match="batch_size must be a positive integer"):
        RetentionPolicy(batch_size=0).validate()
    with pytest.raises(AsmError, match="archive_store is required when archive_before_prune is true"):
        RetentionPolicy(archive_before_prune=True).validate()
    RetentionPolicy(archive_before_prune=True, archive_store=object()).validate()
    assert RetentionPolicy(batch_size=0).is_valid() is False
