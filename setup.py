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

A kernel that imports ``cython.parallel`` is compiled with OpenMP when the
compiler takes ``-fopenmp`` (``CRFSEG_OPENMP=0`` turns it off); it then
links ``libgomp.so.1``, the runtime torch itself loads, so that the
kernels' threads and torch's are one pool.  Without OpenMP the kernels
still build and run, their parallel loops one part after another.
"""

import os
import tempfile
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools._distutils.ccompiler import new_compiler
from setuptools._distutils.errors import CompileError, LinkError
from setuptools._distutils.sysconfig import customize_compiler

# The kernels are found beside this file, whatever the working folder (an sdist
# unpacked by pip, a build from another folder); setuptools wants relative paths.
ROOT = Path(__file__).resolve().parent

checked = os.environ.get("CRFSEG_BOUNDSCHECK", "") not in ("", "0")
sanitize = os.environ.get("CRFSEG_SANITIZE", "")
sanitizer_flags = [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g"] if sanitize else []


def openmp_flag() -> list[str]:
    """``["-fopenmp"]`` when the C compiler compiles and links an OpenMP program, else ``[]``."""
    if os.environ.get("CRFSEG_OPENMP", "1") == "0":
        return []
    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp, "openmp_check.c")
        source.write_text("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        try:
            objects = compiler.compile([str(source)], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(objects, str(Path(tmp, "openmp_check")),
                                     extra_postargs=["-fopenmp"])
        except (CompileError, LinkError):
            print("setup.py: the C compiler has no OpenMP; the lattice kernels split their work over "
                  "Python threads instead")
            return []
    return ["-fopenmp"]


def parallel(source: Path) -> bool:
    """Whether a kernel uses Cython's OpenMP loops."""
    return "cython.parallel" in source.read_text(encoding="utf-8")


openmp = openmp_flag()

extensions = [
    Extension(
        f"crfseg.{source.stem}",
        [os.path.relpath(source)],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3", *sanitizer_flags, *(openmp if parallel(source) else [])],
        extra_link_args=[*sanitizer_flags[:1], *(openmp if parallel(source) else [])],
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
