"""Maglev properties at the real table size: balance, weights, minimal disruption, determinism."""

from __future__ import annotations

from collections import Counter

import pytest

from dataplane.maglev import build_table, disruption, flow_hash
from dataplane.structs import RING_SIZE


def names(n: int) -> list[str]:
    return [f"192.0.2.{i + 1}" for i in range(n)]


@pytest.mark.parametrize("n", [3, 10, 100])
def test_equal_weights_balance_within_one_percent(n):
    table = build_table([(name, 1) for name in names(n)])
    assert len(table) == RING_SIZE
    counts = Counter(table)
    ideal = RING_SIZE / n
    assert max(abs(c - ideal) / ideal for c in counts.values()) < 0.01


def test_weights_give_proportional_shares():
    table = build_table([("a", 1), ("b", 2), ("c", 5), ("d", 0)])
    counts = Counter(table)
    assert 3 not in counts  # weight 0 takes no traffic
    for index, weight in ((0, 1), (1, 2), (2, 5)):
        assert abs(counts[index] / RING_SIZE - weight / 8) < 0.01


@pytest.mark.parametrize("n", [3, 10, 50])
def test_removing_one_backend_moves_about_one_nth(n):
    before_names = names(n)
    after_names = before_names[:-1]
    before = build_table([(x, 1) for x in before_names])
    after = build_table([(x, 1) for x in after_names])
    moved = disruption(before, after, before_names, after_names)
    print(f"\n{n} backends, one removed: {moved:.2%} of entries moved (1/N = {1 / n:.2%})")
    assert 1 / n <= moved < 1 / n + 0.02  # the removed one's share, and hardly anything else


def test_adding_a_backend_moves_about_its_share():
    before_names, after_names = names(10), names(11)
    moved = disruption(build_table([(x, 1) for x in before_names]), build_table([(x, 1) for x in after_names]),
                       before_names, after_names)
    assert 1 / 11 <= moved < 1 / 11 + 0.02


def test_tables_are_deterministic():
    assert build_table([(x, 1) for x in names(7)]) == build_table([(x, 1) for x in names(7)])


def test_flow_hash_is_stable():
    src = bytes([203, 0, 113, 5]) + bytes(12)
    dst = bytes([198, 51, 100, 1]) + bytes(12)
    assert flow_hash(src, dst, 40000, 80, 6) == flow_hash(src, dst, 40000, 80, 6)
    assert flow_hash(src, dst, 40000, 80, 6) != flow_hash(src, dst, 40001, 80, 6)
