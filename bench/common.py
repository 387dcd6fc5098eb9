"""What the GPU benchmarks share: a median of repeated runs, and one ad-hoc Ansible task on this node.

`ansible localhost -c local -m MODULE --tree DIR` writes the task's result as JSON: it needs no
callback plugin beyond ansible-core's own (the GPU machine has only ansible-core).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))


def median_of(fn, repeat=REPEAT):
    """(median seconds of ``repeat`` calls of fn, the last call's result)."""
    times, result = [], None
    for _unused in range(repeat):
        start = time.monotonic()
        result = fn()
        times.append(time.monotonic() - start)
    return statistics.median(times), result


def ansible_task(module, args=""):
    """The result dict of one `module` task on localhost, run under this Python."""
    with tempfile.TemporaryDirectory(prefix="gpunode-bench-") as tree:
        argv = ["ansible", "localhost", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
                "-m", module, "--tree", tree]
        subprocess.run(argv + (["-a", args] if args else []), check=False, capture_output=True, text=True)
        with open(os.path.join(tree, "localhost")) as handle:
            return json.load(handle)
