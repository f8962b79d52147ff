"""Count (and record) every numpy operation and every Python-level call a piece of code makes.

``trace(fn)`` runs ``fn()`` once under ``sys.settrace`` and returns a
:class:`Trace`:

- ``python_calls``: Python frames entered (functions, methods, generator
  resumptions), nanonet's and everyone else's (numpy's Python wrappers too);
- ``ops``: the numpy operations, one :class:`Op` each: a call of a numpy
  function, ufunc, ``ufunc`` method or ``ndarray`` method (or of one of
  scipy's BLAS routines, which Linear uses), an arithmetic or
  comparison operator with an array operand, and an indexing (read or write)
  of an array. Operations made *inside* numpy's own Python code are not
  counted again: the call into numpy is the operation.

Operators and the callable of a call are read from the interpreter's value
stack, which Python exposes to no API: that part works on CPython 3.11
only (``SUPPORTED``); elsewhere only the Python-level calls are counted.
Each recorded operation keeps its callable and arguments, so that
:func:`replay` can run the very same numpy work again, alone, to time it.

Example:
    >>> import numpy as np
    >>> def work(a):
    ...     np.add(a, 1, out=a)
    ...     return (a * 2).sum()
    >>> a = np.zeros(3)
    >>> t = trace(lambda: work(a))
    >>> [op.name for op in t.ops] if SUPPORTED else ["add", "*", "sum"]
    ['add', '*', 'sum']
"""

import ctypes
import dis
import operator
import os
import platform
import sys
from dataclasses import dataclass, field

import numpy as np

SUPPORTED = sys.version_info[:2] == (3, 11) and platform.python_implementation() == "CPython"
_NUMPY_DIR = os.path.dirname(np.__file__)
_HERE = os.path.abspath(__file__)
_OPS = {name: getattr(operator, fn) for name, fn in (
    ("+", "add"), ("&", "and_"), ("//", "floordiv"), ("<<", "lshift"), ("@", "matmul"), ("*", "mul"),
    ("%", "mod"), ("|", "or_"), ("**", "pow"), (">>", "rshift"), ("-", "sub"), ("/", "truediv"), ("^", "xor"),
    ("+=", "iadd"), ("&=", "iand"), ("//=", "ifloordiv"), ("<<=", "ilshift"), ("@=", "imatmul"), ("*=", "imul"),
    ("%=", "imod"), ("|=", "ior"), ("**=", "ipow"), (">>=", "irshift"), ("-=", "isub"), ("/=", "itruediv"),
    ("^=", "ixor"), ("<", "lt"), ("<=", "le"), ("==", "eq"), ("!=", "ne"), (">", "gt"), (">=", "ge"))}
_BINARY_NAMES = [symbol for _, symbol in getattr(dis, "_nb_ops", [])]
_OPCODES = {name: dis.opmap.get(name, -1) for name in
            ("CALL", "BINARY_OP", "COMPARE_OP", "BINARY_SUBSCR", "STORE_SUBSCR", "UNARY_NEGATIVE")}


@dataclass
class Op:
    """One numpy operation: ``fn(*args, **kwargs)`` and the code location (file, function) that made it."""

    name: str
    fn: object
    args: tuple
    kwargs: dict
    where: tuple
    frame: object = field(default=None, repr=False)
    label: object = None


@dataclass
class Trace:
    python_calls: int = 0
    python_where: dict = field(default_factory=dict)  # (file, function) -> calls
    ops: list = field(default_factory=list)


class _IFrame(ctypes.Structure):  # CPython 3.11's _PyInterpreterFrame, up to its value stack
    _fields_ = [("f_func", ctypes.c_void_p), ("f_globals", ctypes.c_void_p), ("f_builtins", ctypes.c_void_p),
                ("f_locals", ctypes.c_void_p), ("f_code", ctypes.c_void_p), ("frame_obj", ctypes.c_void_p),
                ("previous", ctypes.c_void_p), ("prev_instr", ctypes.c_void_p), ("stacktop", ctypes.c_int),
                ("is_entry", ctypes.c_bool), ("owner", ctypes.c_char)]


class _Frame(ctypes.Structure):  # the head of CPython 3.11's PyFrameObject
    _fields_ = [("ob_refcnt", ctypes.c_ssize_t), ("ob_type", ctypes.c_void_p), ("f_back", ctypes.c_void_p),
                ("f_frame", ctypes.POINTER(_IFrame))]


_SLOT = ctypes.sizeof(ctypes.c_void_p)


def _stack(frame, depth):
    """The value ``depth`` places below the top of ``frame``'s value stack (1 = the top); None for NULL."""
    inner = _Frame.from_address(id(frame)).f_frame.contents
    address = ctypes.addressof(inner) + ctypes.sizeof(_IFrame) + (inner.stacktop - depth) * _SLOT
    pointer = ctypes.c_void_p.from_address(address).value
    return ctypes.cast(pointer, ctypes.py_object).value if pointer else None


def _is_array(value):
    return isinstance(value, (np.ndarray, np.generic))


def numpy_callable(fn):
    """True for numpy functions, ufuncs and their methods, ndarray methods, and scipy's BLAS/LAPACK routines."""
    if isinstance(fn, np.ufunc) or type(fn).__name__ in ("_ArrayFunctionDispatcher", "fortran"):
        return True
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, type(sys)):
        return isinstance(owner, (np.ndarray, np.generic, np.ufunc))
    holder = getattr(fn, "__objclass__", None)
    if holder is not None:
        return isinstance(holder, type) and issubclass(holder, (np.ndarray, np.generic, np.ufunc))
    return (getattr(fn, "__module__", None) or "").startswith("numpy")


_KWNAMES = {}


def _kwnames(code):
    """offset of each CALL in ``code`` -> the keyword names its KW_NAMES set (empty tuple if none)."""
    table = _KWNAMES.get(code)
    if table is None:
        table, pending = {}, ()
        for ins in dis.get_instructions(code):
            if ins.opname == "KW_NAMES":
                pending = code.co_consts[ins.arg]
            elif ins.opname == "CALL":
                table[ins.offset], pending = pending, ()
        _KWNAMES[code] = table
    return table


def _on_opcode(frame, record):
    code = frame.f_code
    offset = frame.f_lasti
    opcode = code.co_code[offset]
    where = (os.path.basename(code.co_filename), code.co_name)
    if opcode == _OPCODES["CALL"]:
        argc = code.co_code[offset + 1]
        first, second = _stack(frame, argc + 2), _stack(frame, argc + 1)
        fn, args = (second, []) if first is None else (first, [second])
        if not numpy_callable(fn):
            return
        values = [_stack(frame, d) for d in range(argc, 0, -1)]
        names = _kwnames(code).get(offset, ())
        positional = values[:len(values) - len(names)]
        kwargs = dict(zip(names, values[len(values) - len(names):]))
        name = getattr(fn, "__name__", type(fn).__name__)
        record(Op(name, fn, tuple(args + positional), kwargs, where, frame))
    elif opcode in (_OPCODES["BINARY_OP"], _OPCODES["COMPARE_OP"]):
        left, right = _stack(frame, 2), _stack(frame, 1)
        if _is_array(left) or _is_array(right):
            arg = code.co_code[offset + 1]
            symbol = _BINARY_NAMES[arg] if opcode == _OPCODES["BINARY_OP"] else dis.cmp_op[arg]
            record(Op(symbol, _OPS[symbol], (left, right), {}, where, frame))
    elif opcode == _OPCODES["BINARY_SUBSCR"]:
        container, index = _stack(frame, 2), _stack(frame, 1)
        if isinstance(container, np.ndarray):
            record(Op("[]", operator.getitem, (container, index), {}, where, frame))
    elif opcode == _OPCODES["STORE_SUBSCR"]:
        index, container, value = _stack(frame, 1), _stack(frame, 2), _stack(frame, 3)
        if isinstance(container, np.ndarray):
            record(Op("[]=", operator.setitem, (container, index, value), {}, where, frame))
    elif opcode == _OPCODES["UNARY_NEGATIVE"]:
        value = _stack(frame, 1)
        if _is_array(value):
            record(Op("-x", operator.neg, (value,), {}, where, frame))


def trace(fn, keep_frames=False, label=None):
    """Run ``fn()`` once, counting Python-level calls and recording numpy operations (see the module docstring).

    ``label(frame)``, if given, labels each operation while its frame runs
    (a suspended generator's frame no longer knows its caller).
    """
    result = Trace()

    def record(op):
        if label is not None:
            op.label = label(op.frame)
        if not keep_frames:
            op.frame = None
        result.ops.append(op)

    def local(frame, event, arg):
        if event == "opcode":
            _on_opcode(frame, record)
        return local

    def global_(frame, event, arg):
        code = frame.f_code
        if code.co_filename == _HERE:
            return None
        result.python_calls += 1
        key = (os.path.basename(code.co_filename), code.co_name)
        result.python_where[key] = result.python_where.get(key, 0) + 1
        if not SUPPORTED or code.co_filename.startswith(_NUMPY_DIR):
            return None
        frame.f_trace_opcodes = True
        return local

    previous = sys.gettrace()
    sys.settrace(global_)
    try:
        fn()
    finally:
        sys.settrace(previous)
    return result


def replay(ops):
    """A function that runs the recorded operations again, in order (their arrays as they are now)."""
    calls = [(op.fn, op.args, op.kwargs) for op in ops]

    def run():
        for fn, args, kwargs in calls:
            fn(*args, **kwargs)

    return run
