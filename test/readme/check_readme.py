#!/usr/bin/env python3
"""Runs the code blocks of README.md as written (the `readme` ctest).

    check_readme.py SOURCE_DIR BUILD_DIR

Each fenced block runs by its language, in a scratch directory that mirrors
the source tree (symlinks to its top-level entries) with `build` pointing at
BUILD_DIR, so paths such as build/bin/attn-opt and test/data/... resolve as
in a checkout built with ./run.sh:

  sh      every command, with bash -e (build/python on PYTHONPATH)
  python  the block as a script (build/python on PYTHONPATH); a block that
          imports torch is skipped, saying so, when torch is not installed
  mlir    parsed and verified by build/bin/attn-opt
  json    compiled by attn_mlir.compile (a spec)
  other   (no language: listings, tables) not run

An HTML comment on the line before a block changes that:

  <!-- readme-test: skip: REASON -->       not run (the reason is printed)
  <!-- readme-test: slow: REASON -->      run only with ATTN_README_SLOW=1
  <!-- readme-test: excerpt PATH -->      every line must appear, in order,
                                          in PATH (a file that is built and
                                          tested); `...` lines elide; the block
                                          is then also run by its language
                                          where that makes sense (mlir)

Exits 1 when a block fails (its output is printed), 0 otherwise.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!--\s*readme-test:\s*(skip|slow|excerpt)\s*:?\s*(.*?)\s*-->\s*$")


def blocks(text):
    """(line number, language, code, marker kind, marker argument)."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1), i + 1
        j = start
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        mark = MARK.match(lines[i - 1]) if i > 0 else None
        yield (i + 1, lang, "\n".join(lines[start:j]),
               mark.group(1) if mark else None, mark.group(2) if mark else "")
        i = j + 1


def is_elision(line):
    """A `...` line (with or without a trailing comment) stands for lines
    the excerpt leaves out."""
    return line.strip().startswith("...")


def check_excerpt(code, path):
    """Every non-elided line of `code` occurs in `path`, in order (compared
    without leading/trailing whitespace)."""
    with open(path) as f:
        file_lines = [l.strip() for l in f.read().split("\n")]
    pos = 0
    for line in code.split("\n"):
        want = line.strip()
        if not want or is_elision(line):
            continue
        try:
            pos = file_lines.index(want, pos) + 1
        except ValueError:
            return f"line not found (in order) in {path}: {want}"
    return None


def run(cmd, cwd, env, stdin=None, timeout=900):
    r = subprocess.run(cmd, cwd=cwd, env=env, input=stdin, text=True,
                       capture_output=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def main():
    source, build = (os.path.abspath(p) for p in sys.argv[1:3])
    slow = os.environ.get("ATTN_README_SLOW") == "1"
    with open(os.path.join(source, "README.md")) as f:
        readme = f.read()
    scratch = tempfile.mkdtemp(prefix="attn-readme-")
    try:
        for entry in os.listdir(source):
            if entry not in ("build", ".git"):
                os.symlink(os.path.join(source, entry), os.path.join(scratch, entry))
        os.symlink(build, os.path.join(scratch, "build"))
        env = dict(os.environ)
        # `python3` in a snippet is the interpreter the test runs with (the
        # one with the packages the README asks for).
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env["PYTHONPATH"] = os.path.join(build, "python") + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        have_torch = run([sys.executable, "-c", "import torch"], scratch, env)[0] == 0
        failures = ran = 0
        for line, lang, code, kind, arg in blocks(readme):
            where = f"README.md:{line} ({lang or 'text'})"
            if kind == "skip":
                print(f"skip  {where}: {arg}")
                continue
            if kind == "slow" and not slow:
                print(f"skip  {where}: slow ({arg})")
                continue
            if kind == "excerpt":
                err = check_excerpt(code, os.path.join(source, arg))
                if err:
                    print(f"FAIL  {where}: {err}")
                    failures += 1
                    continue
                print(f"ok    {where}: an excerpt of {arg}")
                ran += 1
                if lang != "mlir":
                    continue
            if lang in ("sh", "bash"):
                rc, out = run(["bash", "-e", "-o", "pipefail", "-c", code], scratch, env)
            elif lang == "python":
                if re.search(r"^\s*import torch|^\s*import .*\btorch\b", code, re.M) \
                        and not have_torch:
                    print(f"skip  {where}: torch is not installed")
                    continue
                rc, out = run([sys.executable, "-"], scratch, env, stdin=code)
            elif lang == "mlir":
                rc, out = run([os.path.join(build, "bin", "attn-opt"), "-"],
                              scratch, env, stdin=code)
            elif lang == "json":
                rc, out = run([sys.executable, "-c",
                               "import sys, attn_mlir; "
                               "print(attn_mlir.compile(sys.stdin.read()))"],
                              scratch, env, stdin=code)
            else:
                continue
            ran += 1
            if rc != 0:
                failures += 1
                print(f"FAIL  {where}: exit {rc}\n{code}\n--- output ---\n{out}")
            else:
                print(f"ok    {where}")
        print(f"{ran} blocks checked, {failures} failed")
        return 1 if failures else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
