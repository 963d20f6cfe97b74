import numpy as np

from backend.core.jit import kernel


@kernel
def _cumulative(x):
    out = np.empty_like(x)
    total = 0.0
    for i in range(x.shape[0]):
        total += x[i]
        out[i] = total
    return out


def test_kernel_matches_its_python_function_and_numpy():
    x = np.random.default_rng(0).random(1000)
    np.testing.assert_allclose(_cumulative(x), np.cumsum(x))
    np.testing.assert_allclose(_cumulative(x), _cumulative.py_func(x))


def test_kernel_runs_compiled():
    x = np.arange(4.0)
    _cumulative(x)
    import numba

    assert isinstance(_cumulative.__wrapped__, type(_cumulative.py_func))
    assert any(isinstance(v, numba.core.registry.CPUDispatcher) for v in _cumulative.__closure__[0].cell_contents)


def test_kernel_compiles_without_a_cache_where_numba_has_nowhere_to_write_one(monkeypatch):
    import numba

    real = numba.njit

    def njit(*args, cache=False, **kwargs):
        if cache:
            raise RuntimeError("cannot cache function: no locator available for file")
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit)

    @kernel
    def double(x):
        return x * 2

    assert double(21) == 42
