"""Run jobs in child processes, so that a job that crashes, hangs or eats memory fails alone.

``ChildPool`` keeps up to ``size`` children, each running one job at a time, started lazily and
reused until ``child_max_jobs`` jobs or until they die. ``InlineRunner`` has the same interface
and runs jobs in threads of the worker (``isolation="inline"``, for development). The executor
gets one of them from ``make_runner``.

How the pool keeps its promises:

- Children start through a fork server that has ``pgqueue.jobrun`` preloaded: forking a
  ready interpreter is safe from a multi-threaded event loop (plain fork is not) and costs
  milliseconds instead of the hundreds a spawned interpreter spends on imports.
- The worker waits for an answer with ``anyio.wait_readable`` on the child's pipe: no thread
  per waiting slot, and the event loop stays free.
- Wall-clock timeout, cancellation and the memory limit all end in SIGKILL; the child is
  replaced lazily, by the next job that needs one.
- Memory is resident memory, not address space. An address-space limit (RLIMIT_AS, or
  RLIMIT_DATA) turns an allocation failure inside native code into a segfault or a deadlock
  rather than a MemoryError: ifcopenshell's geometry iterator segfaulted under a 400 MiB
  RLIMIT_AS while resident at 210 MiB, and hung under a 300 MiB RLIMIT_DATA, so such a job
  would be retried as a crash or a timeout. Its address space also grows with threads (1.5 GiB
  for 210 MiB resident with 32 geometry threads), so a limit near 2 GiB depends on the core
  count. Instead each child resets its peak resident size before a job and checks it after
  (so even a short spike is caught), and the worker reads the same peak every 50 ms while the
  job runs and kills a child past the limit. A MemoryError is reported as the limit too, and
  so is a child that dies after the worker saw it use half its limit or more: native code
  that cannot allocate aborts (PDFium) or is killed by the kernel, and would do so every try.
- A child must not outlive the worker: a thread in the child exits as soon as the worker's end
  of the pipe hangs up (even in the middle of a job), and PR_SET_PDEATHSIG kills it if its
  parent process (the fork server) dies. Children ignore SIGINT: a Ctrl-C on the terminal
  reaches the whole process group, and the worker decides what happens to running jobs.

Children exit on SIGTERM. Under systemd, use ``KillMode=mixed`` so that a stop signal reaches
only the worker, which lets running jobs finish within ``shutdown_grace``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import inspect
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import queue
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import cast

import anyio
import structlog

from pgqueue import extractors
from pgqueue.errors import ExtractionTimeout, ExtractorCrashed, MemoryLimitExceeded
from pgqueue.jobrun import JobInput, Outcome, run_job
from pgqueue.settings import Settings

__all__ = ["ChildPool", "InlineRunner", "Target", "make_runner"]

Target = Callable[[JobInput, Settings], Outcome]
AsyncTarget = Callable[[JobInput, Settings], Awaitable[Outcome]]

log = structlog.get_logger("pgqueue.children")

MEMORY_WATCH_INTERVAL = 0.05  # seconds between two reads of a busy child's peak memory
NEAR_MEMORY_LIMIT = 0.5  # a child that dies after using this share of its limit ran out of memory
EXIT_WAIT = 5.0  # seconds to wait for a child to be reaped after it was told to go
_MIB = 1024 * 1024
_PR_SET_PDEATHSIG = 1


def make_runner(
    settings: Settings, target: Target | AsyncTarget = run_job
) -> ChildPool | InlineRunner | LoopRunner:
    """The runner ``settings.isolation`` asks for, with ``settings.slots`` slots.

    A coroutine function as the target runs on the worker's event loop (``LoopRunner``),
    whatever the isolation: it is for work that waits (a remote service) rather than computes.
    """
    if inspect.iscoroutinefunction(target):
        return LoopRunner(settings, settings.slots, target)
    sync_target = cast(Target, target)
    if settings.isolation == "inline":
        return InlineRunner(settings, settings.slots, sync_target)
    return ChildPool(settings, settings.slots, sync_target)


class LoopRunner:
    """Runs a coroutine target on the event loop, bounded by the job's timeout.

    Cancelling the awaiting task cancels the coroutine. A coroutine that blocks the loop blocks
    the whole worker: give only waiting work to this runner.
    """

    # The executor's cancel scope carries the job's deadline: no second scope per job here.
    enforces_timeouts = False

    def __init__(self, settings: Settings, size: int, target: AsyncTarget) -> None:
        self._settings = settings
        self._target = target
        self._closed = False

    async def run(self, job: JobInput) -> Outcome:
        if self._closed:
            raise RuntimeError("the loop runner is closed")
        started = time.monotonic()
        try:
            return await self._target(job, self._settings)
        except Exception as exc:
            return Outcome.failure(job.id, exc, time.monotonic() - started)

    async def aclose(self) -> None:
        self._closed = True


# --- in the child, or in an inline thread ------------------------------------------------------


def _call_target(target: Target, job: JobInput, settings: Settings, *, check_peak: bool) -> Outcome:
    """Run one job and return its outcome, whatever happens short of the process dying."""
    if check_peak:
        _reset_peak_memory()
    started = time.monotonic()
    try:
        outcome = target(job, settings)
    except Exception as exc:  # a custom target may raise; run_job never does
        outcome = Outcome.failure(job.id, exc, time.monotonic() - started)
    if outcome.error_type == MemoryError.__name__:
        return Outcome.failure(job.id, _out_of_memory(settings), outcome.duration)
    peak = _peak_memory("self") if check_peak else None
    if peak is not None and peak > settings.memory_limit_mb * _MIB:
        return Outcome.failure(job.id, _over_limit(peak, settings), outcome.duration)
    return outcome


def _child_main(conn: Connection, tempdir: str, settings: Settings, target: Target) -> None:
    """Receive a job, run it, send its outcome; until the worker closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(conn.fileno(), tempdir)
    # Downloads land here, so that what a killed job left behind can be removed with it.
    tempfile.tempdir = tempdir
    os.environ["TMPDIR"] = tempdir
    extractors.register_many(settings.extractors)
    while True:
        # A pipe that breaks (ConnectionResetError at recv, BrokenPipeError at send) means the
        # worker is gone: exit quietly, with no traceback in a log that is otherwise JSON.
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        outcome = _call_target(target, job, settings, check_peak=True)
        try:
            try:
                conn.send(outcome)
            except MemoryError:  # a large result may not fit in what is left
                conn.send(Outcome.failure(job.id, _out_of_memory(settings), outcome.duration))
        except OSError:
            return


def _die_with_parent(fd: int, tempdir: str) -> None:
    # Under the fork server the kernel's parent is the fork server, which stays alive as long
    # as any child holds its pipe: only the hang-up of the worker's end ties a busy child to
    # the worker. The death signal covers the fork server itself being killed.
    threading.Thread(
        target=_exit_on_hangup, args=(fd, tempdir), name="pgqueue-parent-watch", daemon=True
    ).start()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _exit_on_hangup(fd: int, tempdir: str) -> None:
    watch = select.poll()
    watch.register(fd, select.POLLRDHUP)
    # POLLIN was never asked for: poll returns only on hang-up, error or a closed descriptor.
    watch.poll()
    shutil.rmtree(tempdir, ignore_errors=True)  # a killed worker cannot do it
    os._exit(0)


def _reset_peak_memory() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # 5: reset the peak resident set size to the current one (Linux >= 4.0)


def _peak_memory(pid: int | str) -> int | None:
    """Peak resident bytes of a process since its last reset, or None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _out_of_memory(settings: Settings) -> MemoryLimitExceeded:
    return MemoryLimitExceeded(
        f"the extraction ran out of memory (MemoryError; the limit is {settings.memory_limit_mb} MiB)"
    )


def _crashed_near_limit(crash: str, peak: int, settings: Settings) -> MemoryLimitExceeded:
    return MemoryLimitExceeded(
        f"the extraction crashed ({crash}) after using {peak // _MIB} MiB, near the limit of "
        f"{settings.memory_limit_mb} MiB: treated as out of memory, not retried"
    )


def _over_limit(peak: int, settings: Settings) -> MemoryLimitExceeded:
    return MemoryLimitExceeded(
        f"the extraction used {peak // _MIB} MiB, more than the limit of "
        f"{settings.memory_limit_mb} MiB"
    )


# --- in the worker -----------------------------------------------------------------------------


class _Child:
    """One child process, the worker's end of its pipe, and its temporary folder."""

    def __init__(self, process: BaseProcess, conn: Connection, tempdir: str) -> None:
        assert process.pid is not None
        self.process = process
        self.conn = conn
        self.tempdir = tempdir
        self.pid: int = process.pid
        self.jobs = 0
        self.peak = 0  # the highest resident size seen during the current job
        self.end_reason: str | None = None
        self.ended: anyio.Event | None = None
        self.exitcode: int | None = None
        # A pid file descriptor cannot hit another process once this one is reaped and its
        # pid reused (the fork server reaps it, not us).
        self.pidfd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self.pidfd = os.pidfd_open(self.pid)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            elif self.process.exitcode is None:
                os.kill(self.pid, signal.SIGKILL)


class ChildPool:
    """Runs each job in a child process, at most ``size`` at once. See the module's docstring."""

    enforces_timeouts = True  # it kills the child at the job's timeout

    def __init__(self, settings: Settings, size: int, target: Target = run_job) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        _require_picklable(target)
        self._settings = settings
        self._target = target
        self._context = multiprocessing.get_context("forkserver")
        # Only takes effect if the fork server of this process is not running yet.
        # Every job fetches its file: storage (obstore, httpx) is preloaded with the job runner,
        # so a replaced child does not pay ~110 ms of imports. Extractors stay lazy, per format.
        preload = {
            "pgqueue.jobrun", "pgqueue.storage.fetcher", __name__,
            getattr(target, "__module__", None) or __name__,
        }
        self._context.set_forkserver_preload(sorted(preload))
        self._limiter = anyio.CapacityLimiter(size)
        self._idle: list[_Child] = []
        self._children: dict[int, _Child] = {}
        self._all_ended: anyio.Event | None = None
        self._starting = anyio.Lock()
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """Process ids of the live children."""
        return [pid for pid, child in self._children.items() if child.process.is_alive()]

    async def run(self, job: JobInput) -> Outcome:
        if self._closed:
            raise RuntimeError("the child pool is closed")
        async with self._limiter:
            try:
                child = await self._checkout()
            except Exception as exc:
                log.error("child_start_failed", job_id=job.id, error=repr(exc))
                return Outcome.failure(job.id, ExtractorCrashed(f"could not start a child process: {exc}"))
            try:
                outcome = await self._exchange(child, job)
            except BaseException as exc:
                cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
                await self._end(child, "cancelled" if cancelled else "error")
                raise
            if child.ended is None:
                await self._check_in(child, outcome)
            return outcome

    async def aclose(self) -> None:
        """Kill every child and wait until each is reaped. Running jobs end as crashed."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            idle, self._idle = self._idle, []
            for child in self._children.values():
                if child not in idle:
                    child.end_reason = child.end_reason or "closed"
                    child.kill()  # its run() sees the pipe close, reports and reaps it
            async with anyio.create_task_group() as group:
                for child in idle:
                    # An idle child is told to go (EOF) and exits by itself: a quiet exit 0,
                    # not a SIGKILL in the log of every normal shutdown.
                    group.start_soon(functools.partial(self._end, child, "closed", graceful=True))
            if self._children:
                self._all_ended = anyio.Event()
                with anyio.move_on_after(2 * EXIT_WAIT):
                    await self._all_ended.wait()

    async def _checkout(self) -> _Child:
        while self._idle:
            child = self._idle.pop()
            if child.process.is_alive():
                return child
            await self._end(child, "died_idle")
        async with self._starting:
            if self._closed:
                raise RuntimeError("the child pool closed")
            began = time.monotonic()
            if self._children:
                # The fork server is warm: a fork takes milliseconds. On the loop, because
                # starting a process polls every other one, and that is not thread-safe.
                child = self._start()
            else:
                # Launching the fork server takes milliseconds; launched from here, its parent
                # is the main thread rather than a pool thread. Then it preloads modules for
                # half a second, which the first fork waits for: not on the loop. No child of
                # ours exists to race with.
                multiprocessing.forkserver.ensure_running()
                child = await anyio.to_thread.run_sync(self._start)
            self._children[child.pid] = child
            log.info("child_started", pid=child.pid, seconds=round(time.monotonic() - began, 4))
            return child

    def _start(self) -> _Child:
        ours, theirs = self._context.Pipe()
        tempdir = tempfile.mkdtemp(prefix="pgqueue-child-")
        process = self._context.Process(
            target=_child_main,
            args=(theirs, tempdir, self._settings, self._target),
            name="pgqueue-child",
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            ours.close()
            shutil.rmtree(tempdir, ignore_errors=True)
            raise
        finally:
            theirs.close()  # a copy kept here would hide the child's death (no EOF)
        return _Child(process, ours, tempdir)

    async def _exchange(self, child: _Child, job: JobInput) -> Outcome:
        started = time.monotonic()
        timeout = self._settings.timeout_for(job.format)
        limit = self._settings.memory_limit_mb * _MIB
        child.peak = 0
        try:
            child.conn.send(job)
        except OSError:  # it died idle, after the check in _checkout
            return await self._crashed(child, job, started)
        deadline = started + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await self._end(child, "timeout")
                message = f"the extraction took longer than {timeout:g} s and was stopped"
                return Outcome.failure(job.id, ExtractionTimeout(message), time.monotonic() - started)
            with anyio.move_on_after(min(MEMORY_WATCH_INTERVAL, remaining)):
                await anyio.wait_readable(child.conn)
                break
            peak = _peak_memory(child.pid)
            child.peak = max(child.peak, peak or 0)
            if peak is not None and peak > limit:
                await self._end(child, "memory")
                failure = _over_limit(peak, self._settings)
                return Outcome.failure(job.id, failure, time.monotonic() - started)
        try:
            reply = child.conn.recv()
        except (EOFError, OSError):
            return await self._crashed(child, job, started)
        if not isinstance(reply, Outcome):
            await self._end(child, "protocol")
            raise TypeError(f"a child answered {type(reply).__name__}, not an Outcome")
        return reply

    async def _crashed(self, child: _Child, job: JobInput, started: float) -> Outcome:
        stopped_by_us = child.end_reason
        exitcode = await self._end(child, "crashed")
        duration = time.monotonic() - started
        if stopped_by_us is not None:
            message = f"child process {child.pid} was stopped ({stopped_by_us}) during the job"
        elif child.peak >= NEAR_MEMORY_LIMIT * self._settings.memory_limit_mb * _MIB:
            # Native code that cannot allocate aborts (PDFium) or is killed by the kernel: a
            # crash this close to the limit is the file's size, and would come back every try.
            crash = _describe_exit(child.pid, exitcode)
            return Outcome.failure(job.id, _crashed_near_limit(crash, child.peak, self._settings), duration)
        else:
            message = f"the extraction crashed: {_describe_exit(child.pid, exitcode)}"
        return Outcome.failure(job.id, ExtractorCrashed(message), duration)

    async def _check_in(self, child: _Child, outcome: Outcome) -> None:
        child.jobs += 1
        if outcome.error_type == MemoryLimitExceeded.__name__:
            # Its heap may stay large or fragmented after the failed job.
            await self._end(child, "memory", graceful=True)
        elif child.jobs >= self._settings.child_max_jobs:
            log.info("child_recycled", pid=child.pid, jobs=child.jobs)
            await self._end(child, "recycled", graceful=True)
        elif self._closed:
            await self._end(child, "closed")
        else:
            self._idle.append(child)

    async def _end(self, child: _Child, reason: str, *, graceful: bool = False) -> int | None:
        """Stop a child (EOF on its pipe, or SIGKILL), reap it and clean up; once per child."""
        with anyio.CancelScope(shield=True):
            if child.ended is not None:
                await child.ended.wait()
                return child.exitcode
            child.ended = anyio.Event()
            child.end_reason = child.end_reason or reason
            try:
                if graceful:
                    child.conn.close()
                else:
                    child.kill()
                child.exitcode = await _reaped(child)
                if child.exitcode is None and graceful:
                    child.kill()
                    child.exitcode = await _reaped(child)
            finally:
                self._release(child)
        return child.exitcode

    def _release(self, child: _Child) -> None:
        self._children.pop(child.pid, None)
        child.conn.close()
        if child.pidfd is not None:
            os.close(child.pidfd)
        if child.exitcode is not None:
            child.process.close()
        shutil.rmtree(child.tempdir, ignore_errors=True)
        code = child.exitcode
        log.info(
            "child_exited",
            pid=child.pid,
            exitcode=code,
            signal=_signal_name(-code) if code is not None and code < 0 else None,
            reason=child.end_reason,
            jobs=child.jobs,
        )
        assert child.ended is not None
        child.ended.set()
        if not self._children and self._all_ended is not None:
            self._all_ended.set()


async def _reaped(child: _Child) -> int | None:
    """The child's exit code once it is reaped, or None if that takes longer than EXIT_WAIT."""
    with anyio.move_on_after(EXIT_WAIT):
        await anyio.wait_readable(child.process.sentinel)
    return child.process.exitcode


def _describe_exit(pid: int, exitcode: int | None) -> str:
    if exitcode is None:
        return f"child process {pid} stopped answering"
    if exitcode < 0:
        return f"child process {pid} was killed by signal {_signal_name(-exitcode)}"
    return f"child process {pid} exited with code {exitcode}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _require_picklable(target: Target) -> None:
    try:
        pickle.dumps(target)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError(f"the target must be a module-level function, got {target!r}") from exc


# --- inline ------------------------------------------------------------------------------------


class InlineRunner:
    """Runs each job in a thread of the worker: ``isolation="inline"``, for development.

    A thread cannot be stopped. On timeout or cancellation the job's thread is abandoned: it
    runs on until its extractor returns, and its result is dropped. It is a daemon thread, so a
    hung extractor does not keep the worker from exiting. There is no memory limit, and an
    extractor that crashes takes the worker with it.
    """

    enforces_timeouts = True  # it abandons the thread at the job's timeout

    def __init__(self, settings: Settings, size: int, target: Target = run_job) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        extractors.register_many(settings.extractors)
        self._settings = settings
        self._target = target
        self._limiter = anyio.CapacityLimiter(size)
        self._threads = _DaemonThreads()
        self._closed = False

    async def run(self, job: JobInput) -> Outcome:
        if self._closed:
            raise RuntimeError("the inline runner is closed")
        async with self._limiter:
            started = time.monotonic()
            timeout = self._settings.timeout_for(job.format)
            loop = asyncio.get_running_loop()
            answer: asyncio.Future[Outcome] = loop.create_future()
            target, settings = self._target, self._settings

            def work() -> None:
                outcome = _call_target(target, job, settings, check_peak=False)
                loop.call_soon_threadsafe(_settle, answer, outcome)

            self._threads.submit(work)
            try:
                with anyio.move_on_after(timeout) as scope:
                    return await answer
            except BaseException:
                log.warning("inline_job_abandoned", job_id=job.id, reason="cancelled")
                raise
            if scope.cancelled_caught:
                log.warning("inline_job_abandoned", job_id=job.id, reason="timeout")
            message = f"the extraction took longer than {timeout:g} s (its thread runs on)"
            return Outcome.failure(job.id, ExtractionTimeout(message), time.monotonic() - started)

    async def aclose(self) -> None:
        """Nothing to stop: abandoned threads are daemons and end with the process."""
        self._closed = True


def _settle(answer: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not answer.done():  # an abandoned job's answer arrives after its waiter left
        answer.set_result(outcome)


class _DaemonThreads:
    """Reused daemon threads for inline jobs.

    Starting a thread per job costs more than a no-op job; these threads stay and take the next
    job. A thread whose job was abandoned stays busy and is not idle, so the next job starts a
    new thread: the runner keeps its capacity. Daemon threads, unlike the
    threads of anyio's pool, do not keep a worker from exiting while a hung extractor runs.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, work: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        if start:
            threading.Thread(target=self._serve, name="pgqueue-inline", daemon=True).start()
        self._jobs.put(work)

    def _serve(self) -> None:
        while True:
            work = self._jobs.get()
            try:
                work()
            except RuntimeError:  # the event loop closed while the job ran: nobody waits for it
                log.debug("inline_answer_dropped")
            with self._lock:
                self._idle += 1
