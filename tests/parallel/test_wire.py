"""The wire format: what a batch looks like on its way to a process worker."""

from __future__ import annotations

import gc

import numpy as np

from joblite.parallel._wire import decode_batch, encode_batch


def test_a_batch_of_closures_and_arrays_travels_whole() -> None:
    offset = 10

    def shifted(x: np.ndarray) -> np.ndarray:
        return x + offset

    tasks = [(shifted, (np.arange(3.0),), {}), (lambda: offset, (), {})]
    decoded, retries, stop_on_error = decode_batch(encode_batch(tasks, 2, False))
    assert (retries, stop_on_error) == (2, False)
    (function, (array,), kwargs), (constant, _, _) = decoded
    assert function(array).tolist() == [10.0, 11.0, 12.0]
    assert kwargs == {}
    assert constant() == 10
    array[0] = 5.0  # a worker's copy of a small array is its own, writable
    assert array.tolist() == [5.0, 1.0, 2.0]


def test_the_reducer_decides_how_arrays_travel() -> None:
    big = np.ones(1000)

    def as_shape(obj: object) -> object:
        if isinstance(obj, np.ndarray) and obj.size >= 1000:
            return (tuple, (obj.shape,))  # stands in for a shared file's reference
        return NotImplemented

    payload = encode_batch([(len, (big, np.ones(2)), {})], 0, True, as_shape)
    [(_, (replaced, kept), _)] = decode_batch(payload)[0]
    assert replaced == (1000,)
    assert kept.tolist() == [1.0, 1.0]


def test_a_payload_is_freed_as_soon_as_it_is_encoded() -> None:
    # A pickler in a reference cycle would keep its stream (the whole
    # payload, arrays included) alive until the garbage collector runs.
    gc.collect()
    gc.disable()
    try:
        payload = encode_batch([(len, (np.ones(100_000),), {})], 0, True)
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert len(payload) > 800_000
