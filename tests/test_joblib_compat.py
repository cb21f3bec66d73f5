"""``import joblite as joblib`` must work for code written against joblib."""

from __future__ import annotations

import joblib
import pytest

import joblite


def test_every_public_joblib_name_exists_in_joblite() -> None:
    missing = [name for name in joblib.__all__ if not hasattr(joblite, name)]
    assert missing == []


@pytest.mark.parametrize("name", sorted(joblite.__all__))
def test_every_advertised_name_resolves(name: str) -> None:
    assert getattr(joblite, name) is not None
    assert name in dir(joblite)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Paralel'"):
        joblite.Paralel  # type: ignore[attr-defined]  # noqa: B018


def test_joblib_style_script_runs_unchanged(tmp_path: object) -> None:
    import numpy as np

    jl = joblite  # what `import joblite as joblib` gives the user's code
    mem = jl.Memory(str(tmp_path), verbose=0)
    square = mem.cache(np.square)
    a = np.vander(np.arange(3)).astype(float)
    assert np.array_equal(square(a), a**2)
    assert square.check_call_in_cache(a)
    results = jl.Parallel(n_jobs=2, backend="threading")(jl.delayed(abs)(-i) for i in range(5))
    assert results == [0, 1, 2, 3, 4]
    path = f"{tmp_path}/x.pkl.z"
    assert jl.dump(a, path, compress=3) == [path]
    assert np.array_equal(jl.load(path), a)
    assert jl.hash(a) == jl.hash(a.copy())
    assert jl.cpu_count() >= 1
    assert jl.effective_n_jobs(-1) == jl.cpu_count()
