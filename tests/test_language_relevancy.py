"""LERF/LangSplat relevancy: the arithmetic against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.language.relevancy import CANONICAL_NEGATIVES, gaussian_relevancy, heat_colors, rank, relevancy


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_canonical_negatives_are_lerfs() -> None:
    assert CANONICAL_NEGATIVES == ("object", "things", "stuff", "texture")


def test_relevancy_hand_computed() -> None:
    e = torch.eye(3)
    query = e[0]
    negatives = torch.stack([e[1], (e[1] + e[2]) / math.sqrt(2)])  # unit vectors
    x = torch.stack(
        [
            e[0],  # cos(q,x) = 1, cos(n,x) = 0, 0 → softmax([10, 0])[0] = 1 / (1 + e^-10)
            e[1],  # cos(q,x) = 0; negatives 1 and 1/√2 → min = softmax([0, 10])[0] = 1 / (1 + e^10)
            (e[0] + e[1]) / math.sqrt(2),  # q: 1/√2; n: 1/√2 and 1/2 → min is against n1: exactly 0.5
            2.0 * (e[0] + e[2]) / math.sqrt(2),  # not unit: cosines are taken. q: 1/√2; n: 0, 1/2
        ]
    )
    got = relevancy(query, negatives, x).numpy()
    expected = [
        1 / (1 + math.exp(-10)),
        1 / (1 + math.exp(10)),
        0.5,
        _sigmoid(10 * (1 / math.sqrt(2) - 0.5)),  # 0.88806: the hardest negative is n2
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert got[3] == pytest.approx(0.88806, abs=1e-5)


def test_relevancy_is_the_minimum_over_negatives_of_the_pairwise_softmax() -> None:
    g = torch.Generator().manual_seed(0)
    q, negs, x = torch.randn(8, generator=g), torch.randn(4, 8, generator=g), torch.randn(5, 8, generator=g)
    cos = torch.nn.functional.cosine_similarity
    manual = []
    for row in x:
        pos = float(cos(q, row, dim=0))
        manual.append(
            min(math.exp(10 * pos) / (math.exp(10 * pos) + math.exp(10 * float(cos(n, row, dim=0)))) for n in negs)
        )
    np.testing.assert_allclose(relevancy(q, negs, x).numpy(), manual, rtol=1e-5)


def test_zero_embedding_scores_one_half_and_no_negatives_is_an_error() -> None:
    assert float(relevancy(torch.ones(4), torch.eye(4)[:2], torch.zeros(1, 4))[0]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        relevancy(torch.ones(4), torch.zeros(0, 4), torch.ones(2, 4))


def test_rank_orders_valid_entries_best_first_with_stable_ties() -> None:
    scores = np.array([0.2, 0.9, 0.5, 0.9, 0.7])
    assert rank(scores).tolist() == [1, 3, 4, 2, 0]
    assert rank(scores, np.array([True, False, True, True, False])).tolist() == [3, 2, 0]


def test_gaussian_relevancy_takes_the_clusters_score() -> None:
    labels = np.array([5, -1, 2, 5, 9, 2])
    got = gaussian_relevancy(labels, np.array([2, 5]), np.array([0.25, 0.75]))
    np.testing.assert_allclose(got, [0.75, 0.0, 0.25, 0.75, 0.0, 0.25])
    assert got.dtype == np.float32


def test_heat_colours_span_cold_to_hot() -> None:
    c = heat_colors(np.array([0.0, 0.5, 0.75, 1.0, 2.0]))
    assert c.dtype == np.uint8 and c.shape == (5, 3)
    assert (c[0] == c[1]).all()  # below the threshold everything is the coldest colour
    assert (c[3] == c[4]).all()  # clipped at the top
    assert c[3, 0] > c[3, 2] and c[1, 2] > c[1, 0]  # hot is red, cold is blue
