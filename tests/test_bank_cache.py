"""The field's bank cache (LRU within a byte budget) and its background builder (backend/features/bank_cache.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from backend.features.bank_cache import BankBuilder, BankCache, nbytes


def test_nbytes_counts_tensors_arrays_tuples_and_objects() -> None:
    class Holder:
        def __init__(self) -> None:
            self.a = np.zeros(10, dtype=np.float32)
            self.b = torch.zeros(4, dtype=torch.float64)
            self.c = 3

    assert nbytes(torch.zeros(5, 2)) == 40
    assert nbytes((np.zeros(3, dtype=np.int64), Holder())) == 24 + 40 + 32
    held = Holder()
    held.flat = held.a.reshape(2, 5)  # a view of `a`: its bytes are held once
    held.part = held.flat[:, 1:]
    assert nbytes(held) == 40 + 32


def test_a_pruned_bank_counts_its_tiles_once() -> None:
    from backend.features.pruned import PrunedBank

    bank = torch.nn.functional.normalize(torch.randn(12, 1000), dim=0)
    pruned = PrunedBank(bank, blocks=8, sample=500)
    assert pruned.tiles.nbytes < nbytes(pruned) < 2 * pruned.tiles.nbytes


def test_cache_evicts_the_least_recently_used_beyond_the_budget_but_keeps_the_newest() -> None:
    cache = BankCache(budget=100, keep=1)
    cache.put("a", np.zeros(10, dtype=np.float32))
    cache.put("b", np.zeros(10, dtype=np.float32))
    assert cache.get("a") is not None  # "a" is now the most recent
    assert cache.put("c", np.zeros(10, dtype=np.float32)) == ["b"]
    assert cache.keys() == ["a", "c"] and cache.bytes == 80
    assert cache.put("huge", np.zeros(1000, dtype=np.float32)) == ["a", "c"]  # over budget alone: still kept
    assert cache.keys() == ["huge"] and "huge" in cache and cache.get("a") is None
    assert cache.pop("huge") is not None and cache.bytes == 0 and len(cache) == 0


def test_cache_keeps_at_least_keep_entries_whatever_their_size() -> None:
    cache = BankCache(budget=1, keep=3)
    for k in range(5):
        cache.put(k, np.zeros(100))
    assert cache.keys() == [2, 3, 4]
    cache.put(3, np.zeros(1))  # replacing an entry updates its size
    assert cache.bytes == 800 + 8 + 800


def test_builder_builds_the_latest_requests_and_stores_them_under_the_lock() -> None:
    lock = threading.RLock()
    gate = threading.Event()
    built, stored = [], {}

    def build(key):
        gate.wait(10)
        built.append(key)
        return key * 10

    def store(key, value):
        assert lock._is_owned()  # called under the field's lock
        stored[key] = value

    builder = BankBuilder(build, store, lock, pending=2)
    builder.request(1)
    for _ in range(1000):  # until the thread has taken 1
        if builder._busy == 1:
            break
        time.sleep(0.01)
    for key in (2, 3, 4):  # 2 is dropped as 3 and 4 arrive (two may wait); the latest is built first
        builder.request(key)
    builder.request(4)  # already pending: ignored
    gate.set()
    assert builder.wait(timeout=10)
    assert built == [1, 4, 3] and stored == {1: 10, 4: 40, 3: 30}
    assert not builder.errors


def test_builder_reports_a_failed_build_and_keeps_going() -> None:
    def build(key):
        if key == "bad":
            raise ValueError("no")
        return key

    stored = {}
    builder = BankBuilder(build, stored.__setitem__, threading.RLock())
    builder.request("bad")
    assert builder.wait(timeout=10)
    builder.request("good")
    assert builder.wait(timeout=10)
    assert stored == {"good": "good"} and builder.errors == ["bad: ValueError: no"]
