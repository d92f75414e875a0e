"""Build the private Cython kernels in ``ext/`` as modules of the package.

Every ``ext/<name>.pyx`` becomes ``crfseg.<name>``.  A source that needs C++
says so in its own header (``# distutils: language = c++``).
Setting ``CRFSEG_EXT=_grid,_metrics`` builds only the named kernels, which
keeps an in-place rebuild of one kernel quick during development.
"""

import os
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        f"crfseg.{source.stem}",
        [str(source)],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for source in sorted(Path("ext").glob("*.pyx"))
    if not os.environ.get("CRFSEG_EXT")
    or source.stem in os.environ["CRFSEG_EXT"].split(",")
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level="3",
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
