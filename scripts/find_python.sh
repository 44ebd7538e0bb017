#!/bin/sh
# Prints the Python that `make` creates .venv with: $1 (the Makefile's $(PYTHON)) when the course
# supports its version, else the first of python3.13 ... python3.10 found on PATH. Exits 1 with advice
# when there is none. Plain POSIX sh (builtins only) so that it runs whatever the default python3 is.
#
#   sh scripts/find_python.sh python3     ->  /usr/bin/python3.12
SUPPORTED=3.10-3.13   # TensorFlow 2.21 has wheels for CPython 3.10-3.13 only

version_of() {  # "3.12", or nothing when $1 does not run
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

requested=${1:-python3}
for candidate in "$requested" python3.13 python3.12 python3.11 python3.10; do
    case $(version_of "$candidate") in
        3.10 | 3.11 | 3.12 | 3.13)
            if [ "$candidate" != "$requested" ]; then
                echo "find_python.sh: $requested is not Python $SUPPORTED; using $candidate" >&2
            fi
            command -v "$candidate"
            exit 0 ;;
    esac
done

found=$(version_of "$requested")
echo "find_python.sh: the course needs Python $SUPPORTED (TensorFlow 2.21 has no wheels for other versions)," >&2
echo "but $requested is ${found:+Python }${found:-not found} and none of python3.13, python3.12, python3.11, python3.10 is on PATH." >&2
echo "Install one (e.g. \`uv python install 3.12\`, \`pyenv install 3.12\` or \`conda create -n py312 python=3.12\`)," >&2
echo "then name it: make PYTHON=/path/to/python3.12 test" >&2
exit 1
