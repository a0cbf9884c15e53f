"""The C API through ctypes, for what one dms-exec process cannot show: several threads on ONE executor object.

Run as a script in its own process (a crash in the library then fails one step, not the whole suite):

    /usr/bin/python3 capi.py LIB PLUGIN_DIR BACKEND EXECUTOR_ID STATE_DIR waiters EXEC_ID N TIMEOUT_MS

opens the executor once and has N threads call dms_executor_wait() on it at the same time; prints one JSON
object: {"threads": [{"rc", "error", "result"}...]}.

    ... start-cancel SPEC_JSON_FILE DELAY_MS

starts the request in one thread and, DELAY_MS later, cancels it from another thread of the same object; prints
{"start": {"rc", "error", "message", "seconds"}, "cancel": {...}, "result": {...} or null}.

    ... recover-wait EXEC_ID TIMEOUT_MS

dms_executor_recover() and then dms_executor_wait() on the same object (what a restarted host does); prints
{"adopted": N, "wait": {"rc", "error", "message", "seconds"}, "result": {...} or null}."""
import ctypes
import json
import sys
import threading
import time

DMS_ERROR_MSG_MAX = 512
DMS_ERROR_FIELD_MAX = 64


class DmsError(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("retryable", ctypes.c_bool), ("sys_errno", ctypes.c_int),
                ("field", ctypes.c_char * DMS_ERROR_FIELD_MAX), ("message", ctypes.c_char * DMS_ERROR_MSG_MAX)]


class DmsExecResult(ctypes.Structure):
    _fields_ = [("outcome", ctypes.c_int), ("exit_code", ctypes.c_int), ("signal", ctypes.c_int),
                ("oom_killed", ctypes.c_bool), ("started_at_ns", ctypes.c_int64), ("finished_at_ns", ctypes.c_int64),
                ("stdout_data", ctypes.c_void_p), ("stdout_len", ctypes.c_size_t), ("stdout_truncated", ctypes.c_bool),
                ("stderr_data", ctypes.c_void_p), ("stderr_len", ctypes.c_size_t), ("stderr_truncated", ctypes.c_bool),
                ("error", ctypes.c_char * DMS_ERROR_MSG_MAX)]


class DmsExecutorConfig(ctypes.Structure):
    _fields_ = [("state_dir", ctypes.c_char_p), ("log", ctypes.c_void_p), ("log_ctx", ctypes.c_void_p),
                ("options", ctypes.POINTER(ctypes.c_char_p))]


def load(lib_path):
    lib = ctypes.CDLL(lib_path)
    lib.dms_global_init.argtypes = [ctypes.POINTER(DmsError)]
    lib.dms_registry_open.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.POINTER(DmsError)]
    lib.dms_registry_close.argtypes = [ctypes.c_void_p]
    lib.dms_executor_open.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_char_p,
                                      ctypes.c_char_p, ctypes.POINTER(DmsExecutorConfig), ctypes.POINTER(DmsError)]
    lib.dms_executor_close.argtypes = [ctypes.c_void_p]
    lib.dms_executor_wait.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64,
                                      ctypes.POINTER(DmsExecResult), ctypes.POINTER(DmsError)]
    lib.dms_exec_result_to_json.argtypes = [ctypes.POINTER(DmsExecResult)]
    lib.dms_exec_result_to_json.restype = ctypes.c_void_p
    lib.dms_exec_result_clear.argtypes = [ctypes.POINTER(DmsExecResult)]
    lib.dms_exec_request_from_json.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p),
                                                ctypes.POINTER(DmsError)]
    lib.dms_exec_request_free.argtypes = [ctypes.c_void_p]
    lib.dms_executor_start.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(DmsError)]
    lib.dms_executor_cancel.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(DmsError)]
    lib.dms_executor_recover.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(DmsError)]
    lib.dms_error_code_name.argtypes = [ctypes.c_int]
    lib.dms_error_code_name.restype = ctypes.c_char_p
    return lib


def check(lib, rc, err, what):
    if rc < 0:
        raise SystemExit(f"{what}: {lib.dms_error_code_name(err.code).decode()}: {err.message.decode()}")


def waiters(lib, ex, exec_id, n, timeout_ms):
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    out = [None] * n
    go = threading.Barrier(n)

    def one(i):
        err = DmsError()
        res = DmsExecResult()
        go.wait()
        rc = lib.dms_executor_wait(ex, exec_id.encode(), timeout_ms, ctypes.byref(res), ctypes.byref(err))
        entry = {"rc": rc, "error": None, "result": None}
        if rc < 0:
            entry["error"] = lib.dms_error_code_name(err.code).decode()
        else:
            p = lib.dms_exec_result_to_json(ctypes.byref(res))
            entry["result"] = json.loads(ctypes.string_at(p).decode())
            libc.free(p)
            lib.dms_exec_result_clear(ctypes.byref(res))
        out[i] = entry

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _call(lib, fn, *args):
    err = DmsError()
    t0 = time.monotonic()
    rc = fn(*args, ctypes.byref(err))
    return {"rc": rc, "error": lib.dms_error_code_name(err.code).decode() if rc < 0 else None,
            "message": err.message.decode(errors="replace"), "seconds": time.monotonic() - t0}


def result_json(lib, res):
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    p = lib.dms_exec_result_to_json(ctypes.byref(res))
    value = json.loads(ctypes.string_at(p).decode())
    libc.free(p)
    return value


def start_cancel(lib, ex, spec_path, delay_ms):
    with open(spec_path, "rb") as f:
        spec = f.read()
    req = ctypes.c_void_p()
    err = DmsError()
    check(lib, lib.dms_exec_request_from_json(spec, len(spec), ctypes.byref(req), ctypes.byref(err)), err,
          "dms_exec_request_from_json")
    exec_id = json.loads(spec)["execution_id"].encode()
    out = {}

    def starter():
        out["start"] = _call(lib, lib.dms_executor_start, ex, req)

    t = threading.Thread(target=starter)
    t.start()
    time.sleep(delay_ms / 1000)
    out["cancel"] = _call(lib, lib.dms_executor_cancel, ex, exec_id)
    t.join()
    res = DmsExecResult()
    w = _call(lib, lib.dms_executor_wait, ex, exec_id, 10000, ctypes.byref(res))
    out["result"] = result_json(lib, res) if w["rc"] == 0 else None
    if w["rc"] == 0:
        lib.dms_exec_result_clear(ctypes.byref(res))
    lib.dms_exec_request_free(req)
    return out


def recover_wait(lib, ex, exec_id, timeout_ms):
    adopted = ctypes.c_size_t(0)
    rec = _call(lib, lib.dms_executor_recover, ex, ctypes.byref(adopted))
    if rec["rc"] < 0:
        return {"adopted": None, "recover": rec, "wait": None, "result": None}
    res = DmsExecResult()
    w = _call(lib, lib.dms_executor_wait, ex, exec_id.encode(), ctypes.c_int64(timeout_ms), ctypes.byref(res))
    out = {"adopted": adopted.value, "recover": rec, "wait": w, "result": None}
    if w["rc"] == 0:
        out["result"] = result_json(lib, res)
        lib.dms_exec_result_clear(ctypes.byref(res))
    return out


def main(argv):
    lib_path, plugin_dir, backend, executor_id, state_dir, op = argv[1:7]
    lib = load(lib_path)
    err = DmsError()
    check(lib, lib.dms_global_init(ctypes.byref(err)), err, "dms_global_init")
    reg = ctypes.c_void_p()
    check(lib, lib.dms_registry_open(ctypes.byref(reg), plugin_dir.encode(), ctypes.byref(err)), err,
          "dms_registry_open")
    opts = (ctypes.c_char_p * 1)(None)
    cfg = DmsExecutorConfig(state_dir.encode(), None, None, opts)
    ex = ctypes.c_void_p()
    check(lib, lib.dms_executor_open(ctypes.byref(ex), reg, backend.encode(), executor_id.encode(), ctypes.byref(cfg),
                                     ctypes.byref(err)), err, "dms_executor_open")
    if op == "waiters":
        exec_id, n, timeout_ms = argv[7], int(argv[8]), int(argv[9])
        print(json.dumps({"threads": waiters(lib, ex, exec_id, n, timeout_ms)}), flush=True)
    elif op == "recover-wait":
        print(json.dumps(recover_wait(lib, ex, argv[7], int(argv[8]))), flush=True)
    elif op == "start-cancel":
        print(json.dumps(start_cancel(lib, ex, argv[7], int(argv[8]))), flush=True)
    else:
        raise SystemExit(f"unknown operation {op}")
    lib.dms_executor_close(ex)
    lib.dms_registry_close(reg)


if __name__ == "__main__":
    main(sys.argv)
