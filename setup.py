"""Build the private Cython kernels in ``ext/`` as modules of the package.

Every ``ext/<name>.pyx`` becomes ``crfseg.<name>``.  A source that needs C++
says so in its own header (``# distutils: language = c++``).
Setting ``CRFSEG_EXT=_grid,_metrics`` builds only the named kernels, which
keeps an in-place rebuild of one kernel quick during development.
Setting ``CRFSEG_BOUNDSCHECK=1`` turns on Cython's bounds, wraparound and
initialisation checks, so an out-of-range index raises ``IndexError``
instead of corrupting memory; ``CRFSEG_SANITIZE=address`` also compiles the
kernels with AddressSanitizer, which catches what those checks cannot see
(raw pointers), when Python runs with ``LD_PRELOAD`` of libasan
(``make test-checked`` builds such a copy and runs it so).
"""

import os
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# The kernels are found beside this file, whatever the working folder (an sdist
# unpacked by pip, a build from another folder); setuptools wants relative paths.
ROOT = Path(__file__).resolve().parent

checked = os.environ.get("CRFSEG_BOUNDSCHECK", "") not in ("", "0")
sanitize = os.environ.get("CRFSEG_SANITIZE", "")
sanitizer_flags = [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g"] if sanitize else []

extensions = [
    Extension(
        f"crfseg.{source.stem}",
        [os.path.relpath(source)],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", *sanitizer_flags],
        extra_link_args=sanitizer_flags[:1],
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
            "boundscheck": checked,
            "wraparound": checked,
            "cdivision": True,
            "initializedcheck": checked,
        },
        # cythonize regenerates C only when a .pyx changes, not when the checks do: the
        # checked C lives apart, so neither build ever compiles the other's
        build_dir="build/cython-checked" if checked else None,
    )
)
