"""Tracing of FlexAttention-style Python functions into MLIR.

A score_mod ``f(score, b, h, q_idx, kv_idx)`` or mask_mod ``f(b, h, q_idx,
kv_idx)`` is called once on symbolic values (`Sym`); each operation on them
appends an ``arith`` / ``math`` op, and each read of a captured numpy array
or torch tensor a ``tensor.extract`` of a capture argument. The result is
the MLIR text of one ``func.func`` and the captures it reads, the spec's
``{"kind": "mlir", "func": ..., "captures": [...]}`` (docs/design.md,
section 6), which the compiler checks and clones into the attention op.

Types: score and floats are f32; b, h, q_idx, kv_idx and integers are
index (integer captures are read as i32 / i64 and widened to index);
comparisons give i1. Python's operators (+ - * / // % ** and comparisons,
& | ^ ~ on conditions, unary -, abs()), the numpy ufuncs and torch
functions listed in _UNARY / _BINARY, ``where`` / ``clamp``, and the tensor
methods float(), long(), int(), to(), abs(), exp(), ... are supported.
Integer // and % round toward negative infinity, as Python's and torch's.

Captures: a numpy array a function reads from its closure, its module's
globals or its argument defaults (and so the plain Python helpers it calls,
rebound the same way), and any torch tensor it indexes, become run-time
inputs of the
kernel (float arrays as f32, integer and bool arrays as int32, or int64
where a value needs it); new values of the same shapes and dtypes reuse the
compiled kernel. Indices of a capture read are clamped into [0, size): a
negative index reads element 0, not the last one.

What cannot be traced raises TypeError naming it: Python control flow on a
traced value (``if``, ``and``, ``or``, ``min()``), ``math.exp`` and other
conversions to a Python number, an unsupported numpy or torch function,
indexing an array the tracer cannot see (an attribute of an object: bind it
to a local name first).
"""

import struct
import sys
import types

_F32, _INDEX, _I1 = "f32", "index", "i1"


class Sym:
    """A traced value: an SSA name in the function being built and its type
    (f32, index or i1)."""

    __slots__ = ("_tracer", "name", "type")

    def __init__(self, tracer, name, type_):
        self._tracer = tracer
        self.name = name
        self.type = type_

    def __repr__(self):
        return f"<traced {self.type} {self.name}>"

    # Python operators.
    def __add__(self, o): return self._tracer.binary("add", self, o)
    def __radd__(self, o): return self._tracer.binary("add", o, self)
    def __sub__(self, o): return self._tracer.binary("sub", self, o)
    def __rsub__(self, o): return self._tracer.binary("sub", o, self)
    def __mul__(self, o): return self._tracer.binary("mul", self, o)
    def __rmul__(self, o): return self._tracer.binary("mul", o, self)
    def __truediv__(self, o): return self._tracer.binary("div", self, o)
    def __rtruediv__(self, o): return self._tracer.binary("div", o, self)
    def __floordiv__(self, o): return self._tracer.binary("floordiv", self, o)
    def __rfloordiv__(self, o): return self._tracer.binary("floordiv", o, self)
    def __mod__(self, o): return self._tracer.binary("mod", self, o)
    def __rmod__(self, o): return self._tracer.binary("mod", o, self)
    def __pow__(self, o): return self._tracer.binary("pow", self, o)
    def __rpow__(self, o): return self._tracer.binary("pow", o, self)
    def __and__(self, o): return self._tracer.binary("and", self, o)
    def __rand__(self, o): return self._tracer.binary("and", o, self)
    def __or__(self, o): return self._tracer.binary("or", self, o)
    def __ror__(self, o): return self._tracer.binary("or", o, self)
    def __xor__(self, o): return self._tracer.binary("xor", self, o)
    def __rxor__(self, o): return self._tracer.binary("xor", o, self)
    def __lt__(self, o): return self._tracer.binary("lt", self, o)
    def __le__(self, o): return self._tracer.binary("le", self, o)
    def __gt__(self, o): return self._tracer.binary("gt", self, o)
    def __ge__(self, o): return self._tracer.binary("ge", self, o)
    def __eq__(self, o): return self._tracer.binary("eq", self, o)
    def __ne__(self, o): return self._tracer.binary("ne", self, o)
    def __neg__(self): return self._tracer.unary("neg", self)
    def __pos__(self): return self
    def __abs__(self): return self._tracer.unary("abs", self)
    def __invert__(self): return self._tracer.unary("not", self)
    __hash__ = None

    # Tensor-like methods (torch's spelling).
    def float(self): return self._tracer.cast(self, _F32)
    def long(self): return self._tracer.cast(self, _INDEX)
    def int(self): return self._tracer.cast(self, _INDEX)
    def bool(self): return self._tracer.cast(self, _I1)

    def to(self, dtype=None, *args, **kwargs):
        name = str(kwargs.get("dtype", dtype))
        if "float" in name or "half" in name:
            return self._tracer.cast(self, _F32)
        if "bool" in name:
            return self._tracer.cast(self, _I1)
        if "int" in name or "long" in name:
            return self._tracer.cast(self, _INDEX)
        raise TypeError(f"attn_mlir: cannot trace .to({name})")

    def abs(self): return self._tracer.unary("abs", self)
    def exp(self): return self._tracer.unary("exp", self)
    def log(self): return self._tracer.unary("log", self)
    def tanh(self): return self._tracer.unary("tanh", self)
    def sqrt(self): return self._tracer.unary("sqrt", self)
    def sigmoid(self): return self._tracer.unary("sigmoid", self)

    def clamp(self, min=None, max=None):
        return self._tracer.clamp(self, min, max)

    # What cannot be traced.
    def _refuse(self, what):
        raise TypeError(
            f"attn_mlir: cannot trace {what} of a traced value "
            f"({self._tracer.role} is called once on symbolic b, h, q_idx, "
            f"kv_idx): use torch.where / numpy.where for a choice, & | ~ "
            f"for and / or / not, torch.minimum / numpy.minimum for min")

    def __bool__(self):
        self._refuse("Python control flow (if, while, and, or, not, min, "
                     "max, a chained comparison)")

    def __index__(self):
        self._refuse("use as a Python index (an array the tracer does not "
                     "see: read it from a local or global name of the "
                     "function, or make it a torch tensor)")

    def __float__(self): self._refuse("conversion to a Python float "
                                      "(math.* functions)")
    def __int__(self): self._refuse("conversion to a Python int")
    def __complex__(self): self._refuse("conversion to a Python complex")
    def __iter__(self): self._refuse("iteration")
    def __len__(self): self._refuse("len()")

    # numpy: ufuncs and where / clip on traced values.
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            raise TypeError(f"attn_mlir: cannot trace numpy.{ufunc.__name__}."
                            f"{method}")
        return self._tracer.call(f"numpy.{ufunc.__name__}", ufunc.__name__,
                                 inputs)

    def __array_function__(self, func, types_, args, kwargs):
        return self._tracer.call(f"numpy.{func.__name__}", func.__name__, args,
                                 kwargs)

    # torch: functions on traced values, and a tensor indexed by them.
    @classmethod
    def __torch_function__(cls, func, types_, args=(), kwargs=None):
        tracer = next((a._tracer for a in _flatten(args, kwargs)
                       if isinstance(a, Sym)), None)
        name = getattr(func, "__name__", str(func))
        if name == "__getitem__":
            return tracer.read(args[0], args[1])
        if name in _REFLECTED and len(args) == 2 and not kwargs:
            # tensor.__rsub__(x) is x - tensor.
            return tracer.binary(_REFLECTED[name], args[1], args[0])
        return tracer.call(f"torch.{name}", name.strip("_"), args, kwargs)


def _flatten(args, kwargs):
    for a in list(args) + list((kwargs or {}).values()):
        if isinstance(a, (tuple, list)):
            yield from a
        else:
            yield a


# torch's reflected operators (the operand order swapped).
_REFLECTED = {"__radd__": "add", "__rsub__": "sub", "__rmul__": "mul",
              "__rtruediv__": "div", "__rdiv__": "div",
              "__rfloordiv__": "floordiv", "__rmod__": "mod",
              "__rpow__": "pow", "__rand__": "and", "__ror__": "or",
              "__rxor__": "xor"}

# Functions by name (numpy ufunc / torch function names): unary ones to
# their op, binary ones to binary()'s names.
_UNARY = {
    "exp": "exp", "log": "log", "tanh": "tanh", "sqrt": "sqrt",
    "rsqrt": "rsqrt", "sin": "sin", "cos": "cos", "erf": "erf",
    "floor": "floor", "ceil": "ceil", "abs": "abs", "absolute": "abs",
    "fabs": "abs", "negative": "neg", "neg": "neg", "exp2": "exp2",
    "log2": "log2", "sigmoid": "sigmoid", "logical_not": "not",
    "bitwise_not": "not", "invert": "not", "square": "square",
}
_BINARY = {
    "add": "add", "subtract": "sub", "sub": "sub", "multiply": "mul",
    "mul": "mul", "true_divide": "div", "divide": "div", "div": "div",
    "floor_divide": "floordiv", "remainder": "mod", "power": "pow",
    "pow": "pow", "minimum": "min", "maximum": "max", "fmin": "min",
    "fmax": "max", "less": "lt", "lt": "lt", "less_equal": "le", "le": "le",
    "greater": "gt", "gt": "gt", "greater_equal": "ge", "ge": "ge",
    "equal": "eq", "eq": "eq", "not_equal": "ne", "ne": "ne",
    "logical_and": "and", "bitwise_and": "and", "logical_or": "or",
    "bitwise_or": "or", "logical_xor": "xor", "bitwise_xor": "xor",
}


def _f32_hex(value):
    """An f32 constant's exact bits, as MLIR's parser takes them."""
    import numpy as np
    bits = struct.unpack("<I", np.float32(value).tobytes())[0]
    return f"0x{bits:08X}"


class Tracer:
    """Builds one func.func from the operations on its Syms."""

    def __init__(self, role, taken=()):
        self.role = role  # "score_mod" or "mask_mod"
        self.taken = set(taken)  # capture names in use elsewhere
        self.lines = []
        self.count = 0
        self.constants = {}
        # Captures: (name, array, element type, shape), in order of use.
        self.captures = []
        self._by_id = {}

    def fresh(self, type_):
        self.count += 1
        return Sym(self, f"%v{self.count}", type_)

    def emit(self, text, type_):
        result = self.fresh(type_)
        self.lines.append(f"  {result.name} = {text}")
        return result

    def const(self, value, type_):
        key = (type_, repr(value))
        if key not in self.constants:
            if type_ == _F32:
                text = f"arith.constant {_f32_hex(value)} : f32"
            elif type_ == _I1:
                text = f"arith.constant {'true' if value else 'false'}"
            else:
                text = f"arith.constant {int(value)} : index"
            self.constants[key] = self.emit(text, type_)
        return self.constants[key]

    # Operands.
    def lift(self, x):
        """A Sym for `x`: a Sym, a Python or numpy number or bool, or a 0-d
        array (a constant)."""
        if isinstance(x, Sym):
            return x
        import numpy as np
        if isinstance(x, (bool, np.bool_)):
            return self.const(bool(x), _I1)
        if isinstance(x, (int, np.integer)):
            if not -2**63 <= int(x) < 2**63:
                raise TypeError(f"attn_mlir: the constant {x} does not fit "
                                f"an index")
            return self.const(int(x), _INDEX)
        if isinstance(x, (float, np.floating)):
            return self.const(float(x), _F32)
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(x, torch.Tensor) and x.dim() == 0:
            return self.lift(x.item())
        raise TypeError(f"attn_mlir: cannot trace {type(x).__name__} "
                        f"{x!r:.60} in {self.role} (numbers, traced values "
                        f"and captured arrays indexed by them only)")

    def cast(self, x, type_):
        x = self.lift(x)
        if x.type == type_:
            return x
        if type_ == _I1:  # nonzero
            if x.type == _F32:
                return self.emit(f"arith.cmpf une, {x.name}, "
                                 f"{self.const(0.0, _F32).name} : f32", _I1)
            return self.emit(f"arith.cmpi ne, {x.name}, "
                             f"{self.const(0, _INDEX).name} : index", _I1)
        if x.type == _I1:
            wide = self.emit(f"arith.extui {x.name} : i1 to i64", "i64")
        elif x.type == _INDEX:
            wide = self.emit(f"arith.index_cast {x.name} : index to i64",
                             "i64")
        else:  # f32 to index: toward zero, as torch's .long()
            wide = self.emit(f"arith.fptosi {x.name} : f32 to i64", "i64")
        if type_ == _F32:
            return self.emit(f"arith.sitofp {wide.name} : i64 to f32", _F32)
        return self.emit(f"arith.index_cast {wide.name} : i64 to index",
                         _INDEX)

    def common(self, a, b, arithmetic):
        """a and b lifted to one type: f32 if either is, else index (i1
        joins index in arithmetic; two i1 stay i1)."""
        a, b = self.lift(a), self.lift(b)
        if _F32 in (a.type, b.type):
            return self.cast(a, _F32), self.cast(b, _F32), _F32
        if a.type == b.type == _I1 and not arithmetic:
            return a, b, _I1
        return self.cast(a, _INDEX), self.cast(b, _INDEX), _INDEX

    # Operations.
    def binary(self, op, a, b):
        if op in ("and", "or", "xor"):
            a, b, t = self.common(a, b, arithmetic=False)
            if t == _F32:
                raise TypeError(f"attn_mlir: cannot trace {op} of floats in "
                                f"{self.role}")
            return self.emit(f"arith.{op}i {a.name}, {b.name} : {t}", t)
        if op in ("lt", "le", "gt", "ge", "eq", "ne"):
            a, b, t = self.common(a, b, arithmetic=op not in ("eq", "ne"))
            if t == _F32:
                pred = {"lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge",
                        "eq": "oeq", "ne": "une"}[op]
                return self.emit(f"arith.cmpf {pred}, {a.name}, {b.name} : "
                                 f"f32", _I1)
            pred = {"lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge",
                    "eq": "eq", "ne": "ne"}[op]
            return self.emit(f"arith.cmpi {pred}, {a.name}, {b.name} : {t}",
                             _I1)
        if op == "div":  # true division: always float
            a, b = self.cast(a, _F32), self.cast(b, _F32)
            return self.emit(f"arith.divf {a.name}, {b.name} : f32", _F32)
        if op == "pow":
            a, b = self.cast(a, _F32), self.cast(b, _F32)
            return self.emit(f"math.powf {a.name}, {b.name} : f32", _F32)
        a, b, t = self.common(a, b, arithmetic=True)
        if t == _F32:
            if op == "floordiv":
                q = self.emit(f"arith.divf {a.name}, {b.name} : f32", _F32)
                return self.unary("floor", q)
            if op == "mod":  # a - floor(a / b) * b, torch.remainder's
                q = self.binary("floordiv", a, b)
                return self.binary("sub", a, self.binary("mul", q, b))
            name = {"add": "addf", "sub": "subf", "mul": "mulf",
                    "min": "minimumf", "max": "maximumf"}[op]
            return self.emit(f"arith.{name} {a.name}, {b.name} : f32", _F32)
        if op == "floordiv":
            return self.emit(f"arith.floordivsi {a.name}, {b.name} : index",
                             _INDEX)
        if op == "mod":  # the sign of the divisor, as Python's %
            r = self.emit(f"arith.remsi {a.name}, {b.name} : index", _INDEX)
            zero = self.const(0, _INDEX)
            signs = self.binary("ne", self.binary("lt", r, zero),
                                self.binary("lt", b, zero))
            fix = self.binary("and", signs, self.binary("ne", r, zero))
            return self.where(fix, self.binary("add", r, b), r)
        name = {"add": "addi", "sub": "subi", "mul": "muli", "min": "minsi",
                "max": "maxsi"}[op]
        return self.emit(f"arith.{name} {a.name}, {b.name} : index", _INDEX)

    def unary(self, op, x):
        x = self.lift(x)
        if op == "not":
            if x.type != _I1:
                raise TypeError(f"attn_mlir: ~ of a {x.type} value in "
                                f"{self.role}: ~ is logical not of a "
                                f"condition here")
            return self.emit(f"arith.xori {x.name}, "
                             f"{self.const(True, _I1).name} : i1", _I1)
        if op == "neg":
            if x.type == _F32:
                return self.emit(f"arith.negf {x.name} : f32", _F32)
            return self.binary("sub", 0, x)
        if op == "abs" and x.type != _F32:
            x = self.cast(x, _INDEX)
            return self.binary("max", x, self.unary("neg", x))
        x = self.cast(x, _F32)
        if op == "square":
            return self.binary("mul", x, x)
        if op == "sigmoid":  # 1 / (1 + exp(-x))
            e = self.unary("exp", self.unary("neg", x))
            return self.binary("div", 1.0, self.binary("add", 1.0, e))
        name = {"abs": "absf"}.get(op, op)
        return self.emit(f"math.{name} {x.name} : f32", _F32)

    def where(self, cond, a, b):
        cond = self.cast(cond, _I1)
        a, b, t = self.common(a, b, arithmetic=True)
        return self.emit(f"arith.select {cond.name}, {a.name}, {b.name} : {t}",
                         t)

    def clamp(self, x, lo=None, hi=None):
        if lo is not None:
            x = self.binary("max", x, lo)
        if hi is not None:
            x = self.binary("min", x, hi)
        return x

    def call(self, qualified, name, args, kwargs=None):
        """A numpy or torch function of traced values, by name."""
        kwargs = {k: v for k, v in (kwargs or {}).items()
                  if not (k == "out" and v is None)}
        if name in _UNARY and len(args) == 1 and not kwargs:
            return self.unary(_UNARY[name], args[0])
        if name in _BINARY and len(args) == 2 and not kwargs:
            return self.binary(_BINARY[name], args[0], args[1])
        if name == "where" and len(args) == 3 and not kwargs:
            return self.where(*args)
        if name in ("clamp", "clip"):
            lo = args[1] if len(args) > 1 else kwargs.pop("min",
                                                          kwargs.pop("a_min", None))
            hi = args[2] if len(args) > 2 else kwargs.pop("max",
                                                          kwargs.pop("a_max", None))
            if not kwargs:
                return self.clamp(args[0], lo, hi)
        # Tensor conversions called as functions (torch.Tensor.float(x)).
        if name in ("float", "long", "int", "bool", "to") and args and \
                isinstance(args[0], Sym):
            return getattr(args[0], name)(*args[1:], **kwargs)
        raise TypeError(f"attn_mlir: cannot trace {qualified} in {self.role} "
                        f"(supported: Python's operators, where, clamp, and "
                        f"{', '.join(sorted(set(_UNARY) | set(_BINARY)))})")

    # Captures.
    def capture(self, array, name):
        """The capture of `array` (a numpy array or torch tensor), added on
        first use; `name` is the variable that holds it."""
        key = id(array)
        if key in self._by_id:
            return self._by_id[key]
        import numpy as np
        torch = sys.modules.get("torch")
        is_torch = torch is not None and isinstance(array, torch.Tensor)
        kind = (("f" if array.dtype.is_floating_point else
                 "b" if array.dtype == torch.bool else "i") if is_torch
                else np.asarray(array).dtype.kind)
        if kind not in "fbiu":
            raise TypeError(f"attn_mlir: capture {name!r}: cannot read "
                            f"{array.dtype} elements")
        shape = tuple(int(d) for d in array.shape)
        if len(shape) > 4:
            raise TypeError(f"attn_mlir: capture {name!r}: rank "
                            f"{len(shape)}, at most 4")
        if kind == "f":
            element, value = "f32", (array.to(torch.float32).contiguous()
                                     if is_torch else
                                     np.ascontiguousarray(array, np.float32))
        else:
            count = array.numel() if is_torch else np.asarray(array).size
            wide = count > 0 and (int(array.min()) < -2**31 or
                                  int(array.max()) >= 2**31)
            element = "i64" if wide else "i32"
            if is_torch:
                value = array.to(torch.int64 if wide else torch.int32)
                value = value.contiguous()
            else:
                value = np.ascontiguousarray(
                    array, np.int64 if wide else np.int32)
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
        base = base if base and not base[0].isdigit() else "c_" + base
        used = {c[0] for c in self.captures} | self.taken
        unique, n = base[:60], 1
        while unique in used:
            n += 1
            unique = f"{base[:56]}_{n}"
        entry = (unique, value, element, shape, len(self.captures))
        self.captures.append(entry)
        self._by_id[key] = entry
        return entry

    def read(self, array, index, name=None):
        """array[index] for a captured array and traced / integer indices."""
        entry = self.capture(array, name or f"capture{len(self.captures)}")
        index = index if isinstance(index, tuple) else (index,)
        shape, element = entry[3], entry[2]
        if len(index) != len(shape):
            raise TypeError(f"attn_mlir: capture {entry[0]!r} of shape "
                            f"{list(shape)} read with {len(index)} indices "
                            f"(one per dimension, no slices)")
        names = []
        for i in index:
            if isinstance(i, (slice, type(Ellipsis))) or i is None:
                raise TypeError(f"attn_mlir: capture {entry[0]!r}: slices "
                                f"cannot be traced, index one element")
            names.append(self.cast(i, _INDEX).name)
        ttype = self.tensor_type(entry)
        value = self.emit(f"tensor.extract %cap{entry[4]}[{', '.join(names)}]"
                          f" : {ttype}", element)
        if element == "f32":
            return value
        return self.emit(f"arith.index_cast {value.name} : {element} to "
                         f"index", _INDEX)

    @staticmethod
    def tensor_type(entry):
        dims = "".join(f"{d}x" for d in entry[3])
        return f"tensor<{dims}{entry[2]}>"


class _Captured:
    """A numpy array or torch tensor the traced function reads by name:
    indexing it with traced values reads the capture."""

    def __init__(self, tracer, array, name):
        self._tracer, self._array, self._name = tracer, array, name

    def __getitem__(self, index):
        return self._tracer.read(self._array, index, self._name)

    def __getattr__(self, attr):  # shape, dtype, ndim, ... of the array
        return getattr(self._array, attr)

    def __len__(self):
        return len(self._array)


def _is_array(x):
    if type(x).__module__ == "numpy" and type(x).__name__ == "ndarray":
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


# Modules whose functions are library code, never rebound.
_LIBRARY = ("numpy", "torch", "attn_mlir", "builtins", "math")


def _rebind(fn, tracer, seen=None, depth=0):
    """`fn` with the arrays it reads by name (closure cells, the globals it
    names, argument defaults) replaced by _Captured proxies, and the plain
    Python functions it names (helpers, to a depth of 8) rebound so; other
    callables are returned as they are."""
    if not isinstance(fn, types.FunctionType) or depth > 8 or \
            (fn.__module__ or "").split(".")[0] in _LIBRARY:
        return fn
    seen = {} if seen is None else seen
    if id(fn) in seen:  # done, or in progress (recursion): as it is
        return seen[id(fn)] or fn
    seen[id(fn)] = None

    def swap(value, name):
        if _is_array(value):
            return _Captured(tracer, value, name)
        if isinstance(value, types.FunctionType):
            return _rebind(value, tracer, seen, depth + 1)
        return value

    code = fn.__code__
    glob = dict(fn.__globals__)
    closure = None
    if fn.__closure__:
        cells = []
        for name, cell in zip(code.co_freevars, fn.__closure__):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                cells.append(cell)
                continue
            new = swap(value, name)
            cells.append(cell if new is value else types.CellType(new))
        closure = tuple(cells)
    names = set(code.co_names)
    for const in code.co_consts:  # names of nested code (comprehensions)
        if isinstance(const, types.CodeType):
            names |= set(const.co_names)
    for name in names & set(fn.__globals__):
        glob[name] = swap(fn.__globals__[name], name)
    varnames = code.co_varnames[code.co_argcount - len(fn.__defaults__ or ()):]
    defaults = tuple(swap(v, n) for v, n in
                     zip(fn.__defaults__ or (), varnames)) or None
    out = types.FunctionType(code, glob, fn.__name__, defaults, closure)
    out.__kwdefaults__ = fn.__kwdefaults__
    seen[id(fn)] = out
    return out


def trace(fn, role, taken=()):
    """Traces `fn`, a score_mod (role "score_mod") or mask_mod ("mask_mod").
    Returns (spec entry, captures): the spec's {"kind": "mlir", "func",
    "captures"} and a dict name -> array of the captured values, in the
    form the kernel reads them; capture names avoid those in `taken`."""
    if not callable(fn):
        raise TypeError(f"{role}: expected a function, got {fn!r:.60}")
    tracer = Tracer(role, taken)
    score_mod = role == "score_mod"
    params = (["f32"] if score_mod else []) + ["index"] * 4
    args = [Sym(tracer, f"%a{i}", t) for i, t in enumerate(params)]
    try:
        result = _rebind(fn, tracer)(*args)
    except IndexError as e:  # numpy refusing a traced index
        if "only integers" not in str(e):
            raise
        raise TypeError(f"attn_mlir: cannot trace indexing a numpy array the "
                        f"tracer does not see in {role} (an attribute or item "
                        f"of an object): read it through a name of the "
                        f"function's closure or module, or make it a torch "
                        f"tensor") from None
    want = _F32 if score_mod else _I1
    try:
        result = tracer.cast(result, want)
    except TypeError:
        raise TypeError(f"{role}: must return a {'number' if score_mod else 'condition'}"
                        f", got {result!r:.60}") from None
    signature = [f"%a{i}: {t}" for i, t in enumerate(params)]
    signature += [f"%cap{e[4]}: {Tracer.tensor_type(e)}"
                  for e in tracer.captures]
    text = (f"func.func @{role}({', '.join(signature)}) -> {want} {{\n"
            + "\n".join(tracer.lines)
            + f"\n  return {result.name} : {want}\n}}\n")
    entry = {"kind": "mlir", "func": text,
             "captures": [{"name": e[0], "shape": list(e[3])}
                          for e in tracer.captures]}
    return entry, {e[0]: e[1] for e in tracer.captures}
