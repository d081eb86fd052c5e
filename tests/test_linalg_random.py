"""ntlib.linalg random matrices: exact spectra, orthogonality, argument checks."""

import pytest
import torch

from ntlib import linalg
from ntlib.config import generator

torch.set_default_dtype(torch.float64)


def test_random_orthogonal_is_orthogonal_and_batched():
    q = linalg.random_orthogonal(5, generator(0), runs=3)
    assert q.shape == (3, 5, 5)
    assert torch.allclose(q @ q.transpose(-1, -2), torch.eye(5).expand(3, -1, -1), atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 4), (6, 3), (3, 6)])
def test_random_matrix_has_the_requested_singular_values(shape):
    m = linalg.random_matrix(*shape, generator(1), lo=0.7, hi=1.4, runs=2)
    s = torch.linalg.svdvals(m)
    ref = torch.logspace(torch.log10(torch.tensor(0.7)), torch.log10(torch.tensor(1.4)), min(shape))
    assert torch.allclose(s, ref.flip(0).expand(2, -1), atol=1e-12)
    assert not torch.allclose(m[0], m[1])


def test_random_spd_spectrum_and_errors():
    s = linalg.random_spd(4, generator(2), lo=0.5, hi=2.0)
    assert torch.allclose(s, s.T)
    assert torch.allclose(torch.linalg.eigvalsh(s), torch.logspace(torch.log10(torch.tensor(0.5)),
                                                                    torch.log10(torch.tensor(2.0)), 4), atol=1e-12)
    with pytest.raises(ValueError, match="hi must be >= lo"):
        linalg.random_spd(3, generator(0), lo=2.0, hi=1.0)
    with pytest.raises(ValueError, match="lo must be > 0"):
        linalg.random_matrix(3, 3, generator(0), lo=0.0)
