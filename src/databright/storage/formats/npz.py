"""``.npz`` proposal files, read without ever unpickling.

Arrays ``X`` (``(n, *feature_shape)``, or flat ``(n, n_features)`` in C order) and ``y``
(``(n,)``), nothing else. Both headers are read and checked (dtype, shape, count) before any
array data is decompressed, so an object array or an archive that would expand to gigabytes is
refused up front; the data is then read with ``allow_pickle=False``. Row ``N`` is ``X[N-1]``;
features are named by their 0-based index within the example (``feature (2, 3)``).
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NoReturn

import numpy as np
import numpy.typing as npt

from databright.storage.examples import RawExamples, check_structure, indexed_feature_names
from databright.storage.problems import Problems
from databright.storage.schema import DatasetSchema

__all__ = ["read_npz", "read_npz_arrays"]


def _npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)  # type: ignore[no-any-return]
    return np.lib.format.read_array_header_2_0(f)  # type: ignore[no-any-return]


def read_npz_arrays(
    file: str | Path | IO[bytes],
    fail: Callable[[str], NoReturn],
    check: Callable[[dict[str, tuple[tuple[int, ...], np.dtype[Any]]]], None] | None = None,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Read ``X`` and ``y`` from an ``.npz`` without ever unpickling.

    The headers are read first; ``check`` sees ``{name: (shape, dtype)}`` and may refuse the file
    (through ``fail``) before any array data is decompressed.
    """
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        fail(f"is not a readable .npz file ({exc}); save it with numpy.savez(path, X=X, y=y)")
    with archive:
        names = archive.namelist()
        strays = [name for name in names if not name.endswith(".npy")]
        if strays:
            fail(f"is not a NumPy .npz archive (it holds {strays[0]!r})")
        arrays = {name[:-4] for name in names}
        if not {"X", "y"} <= arrays:
            held = ", ".join(sorted(arrays)) or "nothing"
            fail(
                f"holds the arrays {held}, not X and y; save features as X and labels as y: "
                "numpy.savez(path, X=X, y=y)"
            )
        if arrays != {"X", "y"}:
            extra = ", ".join(sorted(arrays - {"X", "y"}))
            fail(f"holds unexpected arrays ({extra}); a proposal file holds exactly X and y")
        headers: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
        for key in ("X", "y"):
            try:
                with archive.open(f"{key}.npy") as f:
                    shape, _, dtype = _npy_header(f)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                fail(f"array {key} has a malformed header ({exc}); save the file again")
            if dtype.hasobject:
                fail(
                    f"array {key} holds Python objects (pickled data), which DataBright never "
                    "loads; save plain numeric arrays"
                )
            headers[key] = (tuple(shape), dtype)
        if check is not None:
            check(headers)
        out: dict[str, npt.NDArray[Any]] = {}
        for key in ("X", "y"):
            try:
                with archive.open(f"{key}.npy") as f:
                    out[key] = np.lib.format.read_array(f, allow_pickle=False)
            except (
                ValueError,
                OSError,
                EOFError,
                zipfile.BadZipFile,
                zlib.error,
                NotImplementedError,
            ) as exc:
                fail(f"array {key} is damaged ({exc}); save the file again with numpy.savez")
    return out["X"], out["y"]


def read_npz(path: Path, schema: DatasetSchema, problems: Problems) -> RawExamples:
    """The arrays of an ``.npz`` proposal file, their headers checked against ``schema`` first."""

    def check(headers: dict[str, tuple[tuple[int, ...], np.dtype[Any]]]) -> None:
        (x_shape, x_dtype), (y_shape, _) = headers["X"], headers["y"]
        check_structure(x_shape, x_dtype, y_shape, schema, problems)

    X, y = read_npz_arrays(path, problems.fatal, check)
    return RawExamples(X, y, indexed_feature_names(schema.feature_shape))
