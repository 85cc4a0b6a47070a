"""A worker process of a local sweep: ``python -m purenet.sweep_worker PARENT_PID``.

It reads tasks from stdin, one line of JSON each (see :func:`purenet.sweep.task_to_json`),
trains each run (:func:`purenet.sweep.attempt`) and answers one line of JSON on stdout,
``{"status": ..., "message": ...}``; ``null`` or the end of stdin ends it. Its threads are
capped by the environment its sweep gives it (``PURENET_THREADS``), and raised by a line
``{"threads": N}`` when the sweep's other runs have ended and their cores are free.

Signals: between runs Ctrl-C is ignored (the sweep decides) and SIGTERM ends it at once.
During a run, the first Ctrl-C or SIGTERM interrupts the run cleanly (a keyframe, its
status), and later ones are ignored so that nothing cuts that ending short; the worker
then answers and ends. On Linux the kernel sends it SIGTERM if its sweep dies, so a sweep
killed outright leaves no run training.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading


def _interrupt_once(signum, frame) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _idle() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _die_with(parent: int) -> None:
    """SIGTERM from the kernel when the parent dies (Linux); end now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(0)


def main() -> None:
    _idle()
    _die_with(int(sys.argv[1]))
    # Answers go to the real stdout; anything else printed goes to stderr.
    with os.fdopen(os.dup(1), "w", encoding="utf-8") as answers:
        os.dup2(2, 1)
        serve(answers)


def _read(messages: queue.Queue) -> None:
    """Read stdin: a task (or None) goes to ``messages``; ``{"threads": N}`` gives the run
    in progress N threads from its next batch on (its sweep's other runs have ended)."""
    from purenet._engine.threads import THREADS_VARIABLE

    for line in sys.stdin:
        value = json.loads(line)
        if isinstance(value, dict) and set(value) == {"threads"}:
            os.environ[THREADS_VARIABLE] = str(value["threads"])
            continue
        messages.put(value)
        if value is None:
            return
    messages.put(None)


def serve(answers) -> None:
    """Train each task read from stdin and write its answer to ``answers``."""
    from purenet.runs import INTERRUPTED
    from purenet.sweep import attempt, task_from_json

    messages: queue.Queue = queue.Queue()
    threading.Thread(target=_read, args=(messages,), daemon=True).start()
    while True:
        value = messages.get()
        if value is None:
            return
        task, wait = task_from_json(value)
        signal.signal(signal.SIGINT, _interrupt_once)
        signal.signal(signal.SIGTERM, _interrupt_once)
        try:
            status, message = attempt(task, wait)
        except KeyboardInterrupt:  # arrived outside attempt's own handling
            status, message = INTERRUPTED, None
        _idle()
        try:
            answers.write(json.dumps({"status": status, "message": message}) + "\n")
            answers.flush()
        except OSError:
            return
        if status == INTERRUPTED:
            return


if __name__ == "__main__":
    main()
