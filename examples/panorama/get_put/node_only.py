"""The same get/put loop on the native node alone (no panoramasdk): N cameras of SOURCE on the
virtual clock for SECONDS; prints CPU per batch. The difference to the app under
``python -m panoramasdk run`` is the runtime's own cost.

    python node_only.py [CAMERAS] [SECONDS] [SOURCE]
"""

import resource
import sys


def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def main():
    from telescope import _native

    cameras = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    source = sys.argv[3] if len(sys.argv) > 3 else "pattern:smpte@1920x1080@30"
    node = _native.Node([(f"camera_node_{i + 1}", source) for i in range(cameras)],
                        virtual_clock=True, duration=seconds)
    start, batches = cpu(), 0
    while node.next() is not None:
        batches += 1
        node.done()
    used = cpu() - start
    node.stop()
    print(f"cameras {cameras}, batches {batches}, CPU {used:.2f} s, CPU per batch "
          f"{used * 1000 / max(batches, 1):.2f} ms, per camera frame "
          f"{used * 1000 / max(batches, 1) / cameras:.2f} ms")


main()
