"""The input of a run: its format, and its content (maybe gzipped) as blocks of whole lines."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from typing import IO, BinaryIO

from server.errors import CliError


def detect_format(path: str, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ("csv", "jsonl"):
            raise CliError(f"unknown format {fmt!r}: use csv or jsonl")
        return fmt
    name = path.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise CliError(
        f"cannot tell the format of {path!r}: name it .csv or .jsonl (optionally .gz) "
        "or pass --format csv|jsonl"
    )


class Input:
    """The input file as blocks of whole lines; gzip is recognised by its magic bytes."""

    def __init__(self, path: str, chunk_bytes: int):
        self.path = path
        self.chunk_bytes = chunk_bytes
        try:
            self.raw: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise CliError(f"input file {path!r} does not exist") from None
        except IsADirectoryError:
            raise CliError(f"input {path!r} is a directory, not a file") from None
        except OSError as e:
            raise CliError(f"cannot read {path!r}: {e.strerror}") from None
        self.size = os.fstat(self.raw.fileno()).st_size
        self.stream: IO[bytes] = self.raw
        if self.raw.read(2) == b"\x1f\x8b":
            self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb")  # type: ignore[assignment]
        self.raw.seek(0)

    def close(self) -> None:
        self.stream.close()
        self.raw.close()

    @property
    def done_fraction(self) -> float:
        return self.raw.tell() / self.size if self.size else 1.0

    def read(self, n: int) -> bytes:
        try:
            return self.stream.read(n)
        except (OSError, EOFError, zlib.error) as e:
            raise CliError(f"cannot read {self.path!r}: {e}") from None

    def blocks(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(first_line_number, block)``; a block ends with a newline (but maybe
        the last one) and holds at least one line."""
        line = 1
        rest = b""
        while True:
            data = self.read(self.chunk_bytes)
            if not data:
                if rest:
                    yield line, rest
                return
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            block, rest = data[:cut], data[cut:]
            yield line, block
            line += block.count(b"\n")
