"""`depthlm_hf.data.seeding.rng`: the per-(seed, index, ...) generator keeps the streams data and evaluation
sets were built with."""

from __future__ import annotations

import numpy as np
import pytest

from depthlm_hf.data.seeding import rng


def test_streams_equal_the_seed_sequence_of_the_key():
    expected = np.random.default_rng(np.random.SeedSequence([3, 17])).random(4)
    assert rng(3, 17).random(4).tolist() == expected.tolist()
    assert rng(np.int64(3), np.int32(17)).random(4).tolist() == expected.tolist()
    # strings enter as the sum of their code points (how evaluation samples were keyed by task name)
    task = np.random.default_rng(np.random.SeedSequence([0, 5, sum(map(ord, "two_point_distance"))])).random(3)
    assert rng(0, 5, "two_point_distance").random(3).tolist() == task.tolist()
    assert rng(0, 5).random() != rng(0, 6).random()


@pytest.mark.parametrize("bad", [1.5, True, None])
def test_non_integer_keys_are_refused(bad):
    with pytest.raises(TypeError, match="`key` parts must be ints or strings"):
        rng(0, bad)
