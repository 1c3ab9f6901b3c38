"""durable_rules in a supervised child process.

The C core can still SIGSEGV, abort or loop forever holding the GIL (it does on
``delete_state`` in a session where no action ran, or with ~512 conditions on one
field) — the compiler, the runtime and the load-time limits make every known way
impossible, but a crash in
the API or worker process would lose every request in flight, and a hang would freeze
its event loop. So ``rules_engine: durable`` runs :class:`DurableEvaluator` in a child
process and talks to it over a pair of pipes:

* each call has a deadline (``timeout``, default 2 s); when it passes, or the child
  dies, the child is killed and the call raises :class:`core.errors.EngineUnavailable`
  (HTTP 503: the action's transaction rolls back, nothing is half-applied); the next
  call starts a fresh child;
* the child compiles each RuleSet once and keeps it: its JSON goes over the pipe only
  the first time a child sees its name;
* one lock serialises the pipe, so the evaluator is thread-safe (the C core runs one
  evaluation at a time anyway: it never releases the GIL);
* the child runs in its own session (a Ctrl-C meant for the server does not kill it
  first) and asks the kernel to kill it when its parent dies, on Linux
  (``PR_SET_PDEATHSIG``): a child stuck in a C loop never reads the pipe's end-of-file;
  children are started from one long-lived thread (:class:`_Spawner`), because that
  signal follows the thread that forked, not the process;
* ``close()`` stops the child, and so do garbage collection and interpreter exit
  (``weakref.finalize`` registers with atexit); a forked copy of the parent leaves its
  parent's child alone and starts its own.

The price is the round trip: ~80 µs for an empty request on the 2-core dev machine,
150-450 µs over in-process evaluation with 10-500 rules (bench/rules_bench.py).

Protocol: each message is a 4-byte big-endian length and a JSON object. The child
starts with ``{"ready": pid}``; requests are ``{"op": "eval", "name", "facts",
["ruleset"]}`` → ``{"ok": [ids]}`` or ``{"error": kind, "message", ...}``.

Test hooks (``_force_crash``, ``_force_hang``) arm a real fault that fires inside the
child's next evaluation. The child honours them only when it was started with
``allow_test_faults=True`` (which sets :data:`FAULTS_ENV` for that child alone); nothing
in a rule file or in facts can reach them.
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from core.errors import EngineUnavailable
from core.rules.durable_compiler import RulesetTooComplex, same_rules  # pure: no C module
from core.rules.ir import RuleSet, Scalar

FAULTS_ENV = "KEFU_RULES_TEST_FAULTS"
_HEADER = struct.Struct(">I")
_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the core package
_MAX_MESSAGE = 256 * 1024 * 1024


class _Died(Exception):
    pass


class _TimedOut(Exception):
    pass


# -- framing ---------------------------------------------------------------------------
def _frame(obj: Any) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode()
    return _HEADER.pack(len(data)) + data


def _send_blocking(fd: int, obj: Any) -> None:
    buf = memoryview(_frame(obj))
    while buf:
        buf = buf[os.write(fd, buf) :]


def _recv_blocking(reader: Any) -> Any:
    head = reader.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise _Died("end of file")
    (n,) = _HEADER.unpack(head)
    if n > _MAX_MESSAGE:
        raise _Died(f"message of {n} bytes")
    body = reader.read(n)
    if len(body) < n:
        raise _Died("end of file")
    return json.loads(body)


# -- the parent side ---------------------------------------------------------------------
class _Spawner:
    """Starts the children from one thread that lives as long as the process.

    The kernel's parent-death signal (``PR_SET_PDEATHSIG``) follows the *thread* that
    forked the child, not the process: a child started by a request thread would be
    killed when that thread ends (a thread pool retiring a thread, a short-lived script
    thread), and the next evaluation would fail. Forked from this daemon thread, a child
    dies with the process only. A forked copy of the process starts its own thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Any, Future[Any]]] | None = None
        self._pid: int | None = None

    def call(self, start: Any) -> Any:
        """Run ``start()`` on the spawning thread and return its result (or raise)."""
        with self._lock:
            if self._pid != os.getpid() or self._jobs is None:
                self._jobs = queue.SimpleQueue()
                self._pid = os.getpid()
                threading.Thread(
                    target=self._serve, args=(self._jobs,), name="kefu-rules-spawner", daemon=True
                ).start()
            jobs = self._jobs
        done: Future[Any] = Future()
        jobs.put((start, done))
        return done.result()

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[tuple[Any, Future[Any]]]) -> None:
        while True:
            start, done = jobs.get()
            try:
                done.set_result(start())
            except BaseException as exc:  # handed to the caller, which re-raises it
                done.set_exception(exc)


_SPAWNER = _Spawner()


class _Child:
    """One running child process and its two pipe ends (parent side)."""

    def __init__(self, allow_faults: bool, start_timeout: float) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
        env.pop(FAULTS_ENV, None)
        if allow_faults:
            env[FAULTS_ENV] = "1"
        try:
            # stderr stays the parent's: a crash report ("Fatal Python error:
            # Segmentation fault" and the child's stack) lands in the server's log
            self.proc = _SPAWNER.call(
                lambda: subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "core.rules.isolation",
                        str(to_child_r),
                        str(from_child_w),
                    ],
                    pass_fds=(to_child_r, from_child_w),
                    env=env,
                    cwd=str(_ROOT),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,
                    close_fds=True,
                )
            )
        except BaseException:
            os.close(to_child_w)
            os.close(from_child_r)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.wfd, self.rfd = to_child_w, from_child_r
        # Non-blocking both ways, waited on with poll: a hung child stops reading, and a
        # large ruleset must not block the write past the deadline.
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self._wpoll = select.poll()
        self._wpoll.register(self.wfd, select.POLLOUT)
        self._rpoll = select.poll()
        self._rpoll.register(self.rfd, select.POLLIN)
        self._buf = bytearray()
        self.known: set[str] = set()  # ruleset names this child has compiled
        self.owner = os.getpid()
        # Stops the child when this object is dropped, on close(), and at interpreter
        # exit (weakref.finalize registers itself with atexit).
        self._finalizer = weakref.finalize(self, _stop, self.proc, self.wfd, self.rfd)
        try:
            hello = self.recv(time.monotonic() + start_timeout)
        except (_Died, _TimedOut, ValueError) as exc:
            self.kill(graceful=False)
            raise EngineUnavailable(
                f"the rules engine process did not start ({_describe(self.proc)})"
            ) from exc
        if hello.get("ready") != self.proc.pid:
            self.kill(graceful=False)
            raise EngineUnavailable(f"the rules engine process said {hello!r} on start")

    def kill(self, graceful: bool = True) -> None:
        """Stop the child: ``graceful`` asks it to leave first (0.5 s), otherwise (a
        timeout, a broken pipe) it gets SIGKILL at once."""
        if not graceful and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._finalizer()

    def send(self, obj: Any, deadline: float) -> None:
        buf = memoryview(_frame(obj))
        while buf:
            try:
                buf = buf[os.write(self.wfd, buf) :]
                continue
            except BlockingIOError:
                pass
            except OSError as exc:  # EPIPE: the child is gone
                raise _Died(str(exc)) from exc
            self._wait(self._wpoll, deadline)

    def recv(self, deadline: float) -> Any:
        (n,) = _HEADER.unpack(self._read(_HEADER.size, deadline))
        if n > _MAX_MESSAGE:
            raise _Died(f"message of {n} bytes")
        return json.loads(self._read(n, deadline))

    def _read(self, n: int, deadline: float) -> bytes:
        # one read usually brings the whole reply: keep what comes past ``n``
        buf = self._buf
        while len(buf) < n:
            try:
                chunk = os.read(self.rfd, max(65536, n - len(buf)))
            except BlockingIOError:
                self._wait(self._rpoll, deadline)
                continue
            if not chunk:
                raise _Died("end of file")
            buf += chunk
        out = bytes(buf[:n])
        del buf[:n]
        return out

    @staticmethod
    def _wait(poller: select.poll, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(max(1, int(left * 1000))):
            raise _TimedOut


def _stop(proc: subprocess.Popen[bytes], wfd: int, rfd: int) -> None:
    """Ask the child to leave, then make sure it did. Safe to call more than once."""
    if proc.poll() is None:
        try:  # one non-blocking write: a hung child's full pipe must not block us
            os.write(wfd, _frame({"op": "close"}))
        except OSError:
            pass
        try:
            proc.wait(0.5)
        except subprocess.TimeoutExpired:
            proc.kill()  # a hung child never reads "close"
            proc.wait()
    for fd in (wfd, rfd):
        try:
            os.close(fd)
        except OSError:
            pass


def _describe(proc: subprocess.Popen[bytes]) -> str:
    try:
        rc = proc.wait(1.0)
    except subprocess.TimeoutExpired:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


_ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "TypeError": TypeError,
    "KeyError": KeyError,
}


class IsolatedDurableEvaluator:
    """durable_rules in a supervised child process (the ``durable`` rules engine)."""

    name = "durable-isolated"

    def __init__(
        self,
        timeout: float = 2.0,
        *,
        allow_test_faults: bool = False,
        start_timeout: float = 30.0,
        compile_timeout: float = 30.0,
    ) -> None:
        """``timeout`` bounds each evaluation; the first evaluation of a RuleSet in a
        child also compiles it and gets ``compile_timeout`` instead (compiling is not on
        the hot path, and limits.py keeps it finite). ``allow_test_faults`` is for tests
        only: it lets ``_force_crash``/``_force_hang`` reach this evaluator's child."""
        self.timeout = timeout
        self.compile_timeout = max(timeout, compile_timeout)
        self.start_timeout = start_timeout
        self._allow_faults = allow_test_faults
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._rulesets: dict[str, RuleSet] = {}
        self._closed = False

    # -- the Evaluator protocol ----------------------------------------------------------
    def evaluate(self, ruleset: RuleSet, facts: Mapping[str, Scalar]) -> frozenset[str]:
        self._check_name(ruleset)
        with self._lock:
            child = self._ensure_child()
            first = ruleset.name not in child.known
            req: dict[str, Any] = {"op": "eval", "name": ruleset.name, "facts": dict(facts)}
            if first:
                req["ruleset"] = ruleset.to_json()
            reply = self._call(child, req, self.compile_timeout if first else self.timeout)
            if first and reply.get("error") != "too-complex":
                child.known.add(ruleset.name)
        if "ok" in reply:
            return frozenset(reply["ok"])
        raise _rebuild_error(reply)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._child is not None:
                self._child.kill()
                self._child = None

    # -- test hooks (only honoured by a child started with allow_test_faults=True) -------
    def _force_crash(self, how: str = "engine") -> None:
        """Make the child's next evaluation crash: ``engine`` reproduces a measured
        durable_rules SIGSEGV (error 303 while a session is created, then touching that
        session), ``segv`` sends itself SIGSEGV, ``abort`` calls os.abort()."""
        self._arm({"engine": "crash-engine", "segv": "crash-segv", "abort": "crash-abort"}[how])

    def _force_hang(self, how: str = "engine") -> None:
        """Make the child's next evaluation hang: ``engine`` compiles a ruleset with 512
        conditions under one node, which loops forever in C holding the GIL; ``sleep``
        just sleeps."""
        self._arm({"engine": "hang-engine", "sleep": "hang-sleep"}[how])

    def _arm(self, fault: str) -> None:
        with self._lock:
            reply = self._call(self._ensure_child(), {"op": "fault", "fault": fault}, self.timeout)
        if "ok" not in reply:
            raise _rebuild_error(reply)

    @property
    def pid(self) -> int | None:
        """The current child's process id (None before the first call)."""
        child = self._child
        return child.proc.pid if child is not None and child.proc.poll() is None else None

    # -- internals -----------------------------------------------------------------------
    def _check_name(self, ruleset: RuleSet) -> None:
        # The child caches by name; a different RuleSet under a known name would be
        # answered with the old rules. Names carry a digest of the rules, so this is a bug.
        known = self._rulesets.get(ruleset.name)
        if known is ruleset:
            return
        if known is not None and not same_rules(known, ruleset):
            raise ValueError(
                f"ruleset name {ruleset.name!r} was already used with other rules; names "
                "must change with the rules"
            )
        self._rulesets[ruleset.name] = ruleset

    def _ensure_child(self) -> _Child:
        if self._closed:
            raise EngineUnavailable("the rules engine was closed")
        child = self._child
        if child is not None and child.owner != os.getpid():
            # we are a forked copy: that child belongs to our parent; leave it running
            child._finalizer.detach()
            for fd in (child.wfd, child.rfd):
                os.close(fd)
            child = self._child = None
        if child is None or child.proc.poll() is not None:
            if child is not None:  # it died between calls
                child.kill(graceful=False)
            child = self._child = _Child(self._allow_faults, self.start_timeout)
        return child

    def _call(self, child: _Child, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        try:
            child.send(req, deadline)
            reply = child.recv(deadline)
        except _TimedOut:
            self._drop(child)
            raise EngineUnavailable(
                f"the rules engine did not answer within {timeout:g} s; it was stopped and "
                "a fresh one starts with the next action",
                timeout=timeout,
            ) from None
        except (_Died, OSError, ValueError) as exc:
            detail = _describe(child.proc)
            self._drop(child)
            raise EngineUnavailable(
                f"the rules engine process failed ({detail}); a fresh one starts with the "
                "next action",
                cause=detail,
            ) from exc
        if not isinstance(reply, dict):
            self._drop(child)
            raise EngineUnavailable(f"the rules engine answered {reply!r}")
        return reply

    def _drop(self, child: _Child) -> None:
        child.kill(graceful=False)
        if self._child is child:
            self._child = None


def _rebuild_error(reply: Mapping[str, Any]) -> Exception:
    kind, message = reply.get("error"), str(reply.get("message", ""))
    if kind == "too-complex":
        return RulesetTooComplex(message, reply.get("rule_id"), reply.get("code", "K399"))
    if kind == "engine":
        return EngineUnavailable(message)
    if kind == "faults-disabled":
        return PermissionError(message)
    return _ERRORS.get(str(reply.get("type")), RuntimeError)(message)


# -- the child side ----------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL us when the parent exits (a child stuck in C never
    sees the pipe close)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        # ctypes only on Linux, where prctl exists
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


def _child_main(rfd: int, wfd: int) -> None:
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        return
    # only the child process loads the C core; the parent never does
    from core.rules import durable_runtime  # the C core: in the child process only
    from core.rules.durable_runtime import DurableEngineError, DurableEvaluator  # child only

    faults_allowed = os.environ.get(FAULTS_ENV) == "1"
    evaluator = DurableEvaluator()
    rulesets: dict[str, RuleSet] = {}
    armed: str | None = None
    reader = open(rfd, "rb", buffering=65536)
    _send_blocking(wfd, {"ready": os.getpid()})
    while True:
        try:
            req = _recv_blocking(reader)
        except _Died:
            return  # the parent closed the pipe (or died)
        op = req.get("op")
        if op == "close":
            evaluator.close()
            return
        if op == "fault":
            if not faults_allowed:
                _send_blocking(
                    wfd,
                    {
                        "error": "faults-disabled",
                        "message": "this rules engine was not started for fault tests",
                    },
                )
            else:
                armed = str(req.get("fault"))
                _send_blocking(wfd, {"ok": []})
            continue
        if op != "eval":
            _send_blocking(
                wfd,
                {"error": "protocol", "type": "ValueError", "message": f"unknown request {op!r}"},
            )
            continue
        try:
            if "ruleset" in req:
                rulesets[req["name"]] = RuleSet.from_json(req["ruleset"])
            rs = rulesets[req["name"]]
            if armed is not None:
                fault, armed = armed, None
                _fault(fault, durable_runtime)
            ids = evaluator.evaluate(rs, req["facts"])
            reply: dict[str, Any] = {"ok": sorted(ids)}
        except RulesetTooComplex as exc:
            reply = {
                "error": "too-complex",
                "message": str(exc),
                "rule_id": exc.rule_id,
                "code": exc.code,
            }
        except DurableEngineError as exc:
            reply = {"error": "engine", "message": exc.message}
        except Exception as exc:
            reply = {"error": "other", "type": type(exc).__name__, "message": str(exc)}
        _send_blocking(wfd, reply)


def _fault(fault: str, runtime: Any) -> None:
    if fault == "crash-engine":
        try:
            runtime._provoke_segfault()
        finally:  # in case the heap layout spared us, the test still sees a crash
            os.kill(os.getpid(), signal.SIGSEGV)
    elif fault == "crash-segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif fault == "crash-abort":
        os.abort()
    elif fault == "hang-engine":
        runtime._provoke_hang()
    elif fault == "hang-sleep":
        while True:
            time.sleep(60)


if __name__ == "__main__":
    _child_main(int(sys.argv[1]), int(sys.argv[2]))
