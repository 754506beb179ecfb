"""Where a server process spends its time: a summary of a py-spy ``--format raw`` profile.

py-spy's raw output is one collapsed stack a line, ``frame;frame;...;frame count``, each frame
``function (file:line)``. The summary gives each thread's share of the samples, then the
functions with the largest inclusive share (the time spent in them and below) and the largest
self share (the time spent in them alone), with line numbers dropped so a function counts once.

    .venv/bin/python bench/load_profile.py PROFILE.txt [--top 30]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
_SITE = re.compile(r"^.*?/(site-packages|lib/python3\.\d+)/")


def _frame(frame: str) -> str:
    """``function (file:line)`` without the line, and with the path from the package on."""
    frame = _LINE.sub(")", frame)
    name, _, path = frame.partition(" (")
    path = _SITE.sub("", path)
    path = path.split("/work/main/", 1)[-1]
    return f"{name} ({path}"


def _thread(frames: list[str]) -> str:
    for frame in frames[:3]:
        if frame.startswith("thread "):
            return frame
    return "?"


def summarise(path: Path, top: int = 25) -> str:
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack and samples.isdigit():
            stacks.append((stack.split(";"), int(samples)))
    total = sum(count for _, count in stacks)
    if not total:
        return f"{path}: no samples"
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks:
        threads[_thread(frames)] += count
        code = [f for f in frames if not f.startswith(("thread ", "process "))]
        for name in {_frame(f) for f in code}:
            inclusive[name] += count
        if code:
            own[_frame(code[-1])] += count
    lines = [f"{path}: {total} samples of the threads that were running (py-spy, idle ones left out)"]
    lines.append("  by thread:")
    lines += [f"    {100 * count / total:5.1f} %  {name}" for name, count in threads.most_common(8)]
    lines.append("  inclusive (the function and what it calls):")
    lines += [f"    {100 * count / total:5.1f} %  {name}" for name, count in inclusive.most_common(top)]
    lines.append("  self (the function alone):")
    lines += [f"    {100 * count / total:5.1f} %  {name}" for name, count in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
