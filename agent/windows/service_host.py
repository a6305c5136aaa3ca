"""The thin glue between Windows' service control manager and `service_control.ServiceRun`:
StartServiceCtrlDispatcherW, RegisterServiceCtrlHandlerExW and SetServiceStatus from advapi32,
through ctypes. Only Windows runs it (`devposture-agent service`); elsewhere `serve` says it
was not started by Windows. Everything it decides is in `service_control`, which the tests run
on Linux; `make typecheck` checks this glue as Windows code (mypy --platform win32).

Why ctypes and not pywin32: these are three functions and one structure; pywin32 would add a
Windows-only dependency of 10 MB with its own DLLs to freeze, for the same three calls.

The SCM calls ServiceMain on a thread of its own (the dispatcher's), so the service runs
there, not on Python's main thread: it must not install signal handlers (`cmd_service` does
not), and stops through the control handler instead.
"""

from __future__ import annotations

import logging
import sys

from devposture.agent.windows.service_control import (
    ERROR_CALL_NOT_IMPLEMENTED,
    SERVICE_WIN32_OWN_PROCESS,
    Body,
    ServiceRun,
    ServiceStatus,
)

log = logging.getLogger(__name__)
ERROR_FAILED_SERVICE_CONTROLLER_CONNECT = 1063


class NotStartedByWindows(Exception):
    """`service` was run from a console, not by the service control manager (or not on
    Windows at all)."""


if sys.platform != "win32":

    def serve(name: str, body: Body) -> int:
        """Only Windows has a service control manager."""
        raise NotStartedByWindows

else:  # mypy checks this branch for Windows only
    import ctypes
    from ctypes import wintypes

    class _ServiceStatus(ctypes.Structure):
        _fields_ = [
            ("dwServiceType", wintypes.DWORD),
            ("dwCurrentState", wintypes.DWORD),
            ("dwControlsAccepted", wintypes.DWORD),
            ("dwWin32ExitCode", wintypes.DWORD),
            ("dwServiceSpecificExitCode", wintypes.DWORD),
            ("dwCheckPoint", wintypes.DWORD),
            ("dwWaitHint", wintypes.DWORD),
        ]

    _ServiceMain = ctypes.WINFUNCTYPE(None, wintypes.DWORD, ctypes.POINTER(wintypes.LPWSTR))
    _HandlerEx = ctypes.WINFUNCTYPE(
        wintypes.DWORD, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID, wintypes.LPVOID
    )

    class _ServiceTableEntry(ctypes.Structure):
        _fields_ = [("lpServiceName", wintypes.LPWSTR), ("lpServiceProc", _ServiceMain)]

    _advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
    _advapi32.StartServiceCtrlDispatcherW.argtypes = [ctypes.POINTER(_ServiceTableEntry)]
    _advapi32.StartServiceCtrlDispatcherW.restype = wintypes.BOOL
    _advapi32.RegisterServiceCtrlHandlerExW.argtypes = [
        wintypes.LPCWSTR,
        _HandlerEx,
        wintypes.LPVOID,
    ]
    _advapi32.RegisterServiceCtrlHandlerExW.restype = wintypes.HANDLE
    _advapi32.SetServiceStatus.argtypes = [wintypes.HANDLE, ctypes.POINTER(_ServiceStatus)]
    _advapi32.SetServiceStatus.restype = wintypes.BOOL
    # The callbacks must outlive every call the SCM may make to them.
    _KEPT: list[object] = []

    def serve(name: str, body: Body) -> int:
        """Run `body` as the service `name` until it returns; its exit code. Raises
        NotStartedByWindows when this process was not started by the SCM."""
        outcome: list[int] = []

        def service_main(argc: int, argv: object) -> None:
            handle: list[int] = []

            def report(status: ServiceStatus) -> None:
                native = _ServiceStatus(
                    SERVICE_WIN32_OWN_PROCESS, status.state, status.controls_accepted,
                    status.win32_exit_code, status.service_exit_code, status.checkpoint,
                    status.wait_hint_ms,
                )  # fmt: skip
                if handle and not _advapi32.SetServiceStatus(handle[0], ctypes.byref(native)):
                    log.warning("SetServiceStatus failed (error %d)", ctypes.get_last_error())

            run = ServiceRun(report, body)

            def handler(control: int, event_type: int, event_data: object, context: object) -> int:
                try:
                    return run.handle(control)
                except Exception:  # an exception must never cross into the SCM's thread
                    log.exception("service control %#x", control)
                    return ERROR_CALL_NOT_IMPLEMENTED

            handler_callback = _HandlerEx(handler)
            _KEPT.append(handler_callback)
            registered = _advapi32.RegisterServiceCtrlHandlerExW(name, handler_callback, None)
            if not registered:
                log.error(
                    "RegisterServiceCtrlHandlerExW failed (error %d)", ctypes.get_last_error()
                )
                outcome.append(1)
                return
            handle.append(registered)
            outcome.append(run.run())

        main_callback = _ServiceMain(service_main)
        _KEPT.append(main_callback)
        table = (_ServiceTableEntry * 2)(
            _ServiceTableEntry(name, main_callback), _ServiceTableEntry(None, _ServiceMain())
        )
        if not _advapi32.StartServiceCtrlDispatcherW(table):
            error = ctypes.get_last_error()
            if error == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT:
                raise NotStartedByWindows
            raise ctypes.WinError(error)
        return outcome[0] if outcome else 1
