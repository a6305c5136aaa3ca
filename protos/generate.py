"""Generate the Python modules and type stubs for the devposture contract.

`make protos` runs this into `protos/`; the staleness test runs it into a temporary folder
and compares, so the checked-in modules can never drift from the `.proto` file.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES = ("devposture/v1/devposture.proto", "devposture/v1/admin.proto")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def _plugin(name: str) -> str:
    """Locate a protoc plugin installed beside this interpreter (mypy-protobuf)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the test extras (pip install -e '.[test]')")
    return found


def generate(out_dir: Path) -> list[Path]:
    """Run protoc for every contract file into out_dir; return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *PROTO_FILES,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written: list[Path] = []
    for proto in PROTO_FILES:
        stem = proto.removesuffix(".proto")
        written.extend(out_dir / f"{stem}{suffix}" for suffix in GENERATED_SUFFIXES)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTO_ROOT, help="output folder")
    options = parser.parse_args()
    for path in generate(options.out):
        print(path)


if __name__ == "__main__":
    main()
