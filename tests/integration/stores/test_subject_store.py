"""The subject store in the real Redis: edits are versioned and atomic, bad definitions are refused."""

from __future__ import annotations

import threading

import pytest
import redis

from pipeline.domain.subjects import SubjectError
from pipeline.domain.subjects.model import SubjectSet, parse_subjects
from pipeline.settings import Settings
from pipeline.stores.redis.live import connect
from pipeline.stores.redis.subjects import SubjectStore, SubjectsWatcher, subject_from_options

pytestmark = pytest.mark.integration


@pytest.fixture
def store(settings: Settings) -> SubjectStore:
    return SubjectStore(connect(settings), settings.redis_prefix)


def test_an_empty_store_reads_as_an_empty_set(store: SubjectStore) -> None:
    assert store.content_hash() is None
    assert store.load().subjects == ()


def test_put_change_remove_bump_the_version(store: SubjectStore) -> None:
    first = store.put(subject_from_options("星河乳业", ["星河乳业,星河牛奶"]))
    assert first.version == 1 and first.names == ("星河乳业",)
    changed = store.put(subject_from_options("星河乳业", ["星河"], exclude=["星河大道"]))
    assert changed.version == 2 and changed.get("星河乳业").exclude == ("星河大道",)  # type: ignore[union-attr]
    assert store.load() == changed and store.content_hash() == changed.content_hash
    assert store.remove("星河乳业").names == ()
    with pytest.raises(SubjectError, match="no subject named"):
        store.remove("星河乳业")


def test_invalid_definitions_are_refused_and_nothing_is_written(store: SubjectStore) -> None:
    store.put(subject_from_options("A", ["a"]))
    before = store.load()
    with pytest.raises(SubjectError):
        subject_from_options("B", [","])  # an empty group
    with pytest.raises(SubjectError):
        subject_from_options("C", ["c"], exclude=["c"])  # excludes what it includes
    assert store.load() == before


def test_concurrent_edits_lose_nothing(store: SubjectStore) -> None:
    names = [f"s{i}" for i in range(12)]
    threads = [threading.Thread(target=store.put, args=(subject_from_options(n, [n]),)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = store.load()
    assert sorted(final.names) == sorted(names) and final.version == len(names)


def test_seed_only_fills_an_empty_store(store: SubjectStore) -> None:
    seed = parse_subjects({"subjects": [{"name": "春运", "include": [["春运"]]}]})
    assert store.seed(seed) is True
    assert store.seed(SubjectSet()) is False
    assert store.load().names == ("春运",)


def test_the_watcher_sees_changes_and_survives_an_outage(settings: Settings, store: SubjectStore) -> None:
    clock = [0.0]
    watcher = SubjectsWatcher(store, reload_s=2.0, clock=lambda: clock[0])
    assert watcher.poll() is None  # nothing stored yet
    store.put(subject_from_options("高考", ["高考"]))
    assert watcher.poll() is None  # checked less than reload_s ago
    clock[0] = 2.0
    assert watcher.poll() is not None and watcher.current.names == ("高考",)
    clock[0] = 4.0
    assert watcher.poll() is None  # unchanged
    down = SubjectStore(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2), "x")
    offline = SubjectsWatcher(down, reload_s=0.0)
    offline.current = watcher.current
    assert offline.poll() is None and offline.current.names == ("高考",)
