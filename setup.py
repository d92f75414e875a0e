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

# The kernels are found beside this file, whatever the working folder (an sdist
# unpacked by pip, a build from another folder); setuptools wants relative paths.
ROOT = Path(__file__).resolve().parent

extensions = [
    Extension(
        f"crfseg.{source.stem}",
        [os.path.relpath(source)],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for source in sorted((ROOT / "ext").glob("*.pyx"))
    if not os.environ.get("CRFSEG_EXT")
    or source.stem in os.environ["CRFSEG_EXT"].split(",")
]
if not extensions:  # a wheel without its kernels would install and then fail to import
    raise SystemExit(f"setup.py: no Cython kernel to build from {ROOT / 'ext'}/*.pyx "
                     f"(CRFSEG_EXT={os.environ.get('CRFSEG_EXT', '')!r})")

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
