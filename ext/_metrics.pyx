"""Confusion-matrix accumulation in one pass over the labels.

No validation here: ``crfseg.metrics`` checks shapes and dtypes and turns the
status returned by the kernel into an error message.
"""

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t

# The label dtypes met in practice: PNG label files (uint8, uint16), torch
# argmax (int64) and int32 label maps.  Prediction and target may differ, so
# each has its own fused type; other dtypes are converted by the caller.
ctypedef fused pred_t:
    uint8_t
    uint16_t
    int32_t
    int64_t

ctypedef fused target_t:
    uint8_t
    uint16_t
    int32_t
    int64_t


def accumulate_confusion(
    const pred_t[::1] pred,
    const target_t[::1] target,
    long long num_classes,
    long long ignore_index,
    int64_t[:, ::1] out,
):
    """Add the pairs (target[i], pred[i]) into ``out`` in one pass.

    Pixels where either label equals ``ignore_index`` are skipped.

    Returns
    -------
    status : int
        0 when every label was valid, 1 when ``pred[index]`` was out of range,
        2 when ``target[index]`` was out of range.  ``out`` holds the pixels
        accumulated before the bad one; the caller discards it.
    index : int
        Flat position of the first invalid label (0 when status is 0).
    """
    cdef Py_ssize_t i, n = pred.shape[0]
    cdef long long p, t
    cdef int status = 0
    cdef Py_ssize_t bad = 0
    with nogil:
        for i in range(n):
            t = <long long>target[i]
            p = <long long>pred[i]
            if t == ignore_index or p == ignore_index:
                continue
            if t < 0 or t >= num_classes:
                status = 2
                bad = i
                break
            if p < 0 or p >= num_classes:
                status = 1
                bad = i
                break
            out[t, p] += 1
    return status, bad
