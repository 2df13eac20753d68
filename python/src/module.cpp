//===- module.cpp - the attn_mlir._core Python extension ------------------===//
//
// pybind11 bindings over the C API (include/attn-c/attn.h): Context and
// Kernel. Tensors come in as anything with the buffer protocol (numpy
// arrays) or with __dlpack__ (PyTorch, JAX, CuPy, numpy, ...); both are
// borrowed without a copy, with their strides. The GIL is released while
// kernels compile and run. Errors of the runtime become ValueError (bad
// shapes, dtypes, strides, specs) or RuntimeError (compilation, target,
// cache directory), with the runtime's message.
//
//===----------------------------------------------------------------------===//

#include "DLPack.h"

#include "attn-c/attn.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;
namespace dl = attn::dlpack;

namespace {

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

[[noreturn]] void raiseStatus(attn_status status) {
  std::string msg = attn_last_error();
  switch (status) {
  case ATTN_ERROR_INVALID_ARGUMENT:
  case ATTN_ERROR_INVALID_SPEC:
  case ATTN_ERROR_SHAPE_MISMATCH:
  case ATTN_ERROR_BUFFER_TOO_SMALL:
    throw py::value_error(msg);
  default:
    throw std::runtime_error(msg); // RuntimeError
  }
}

void check(attn_status status) {
  if (status != ATTN_OK)
    raiseStatus(status);
}

const char *dtypeName(attn_dtype d) {
  switch (d) {
  case ATTN_DTYPE_F32:
    return "float32";
  case ATTN_DTYPE_F16:
    return "float16";
  case ATTN_DTYPE_BF16:
    return "bfloat16";
  case ATTN_DTYPE_BOOL:
    return "bool";
  case ATTN_DTYPE_I32:
    return "int32";
  case ATTN_DTYPE_I64:
    return "int64";
  }
  return "?";
}

//===----------------------------------------------------------------------===//
// Borrowed tensors
//===----------------------------------------------------------------------===//

/// Types whose __dlpack__ rejected the max_version keyword (pre-1.0
/// producers); they are asked without it from then on.
std::vector<PyTypeObject *> &legacyDLPackTypes() {
  static std::vector<PyTypeObject *> types;
  return types;
}

/// torch.Tensor and the torch objects its fast path compares with; empty
/// until torch has been imported by someone.
struct TorchTypes {
  PyTypeObject *tensor = nullptr, *parameter = nullptr;
  py::object f32, f16, bf16, boolean, i32, i64;
  /// torch.is_grad_enabled.
  py::object isGradEnabled;
  /// Interned attribute names.
  py::str sDtype{"dtype"}, sIsNeg{"is_neg"}, sIsCpu{"is_cpu"},
      sIsCuda{"is_cuda"}, sShape{"shape"}, sStride{"stride"},
      sDataPtr{"data_ptr"}, sRequiresGrad{"requires_grad"};
};

const TorchTypes *torchTypes() {
  static TorchTypes *types = nullptr;
  if (types)
    return types;
  PyObject *torch = PyImport_GetModule(py::str("torch").ptr());
  if (!torch) {
    PyErr_Clear();
    return nullptr;
  }
  py::object mod = py::reinterpret_steal<py::object>(torch);
  if (!py::hasattr(mod, "Tensor") || !py::hasattr(mod, "nn"))
    return nullptr; // still importing
  auto *t = new TorchTypes;
  t->tensor = reinterpret_cast<PyTypeObject *>(mod.attr("Tensor").ptr());
  t->parameter = reinterpret_cast<PyTypeObject *>(
      mod.attr("nn").attr("Parameter").ptr());
  t->f32 = mod.attr("float32");
  t->f16 = mod.attr("float16");
  t->bf16 = mod.attr("bfloat16");
  t->boolean = mod.attr("bool");
  t->i32 = mod.attr("int32");
  t->i64 = mod.attr("int64");
  t->isGradEnabled = mod.attr("is_grad_enabled");
  types = t;
  return types;
}

/// A tensor borrowed from a Python object for one call: a buffer view or a
/// consumed DLPack capsule, released (deleter called) on destruction.
class Borrowed {
public:
  Borrowed() = default;
  Borrowed(const Borrowed &) = delete;
  Borrowed &operator=(const Borrowed &) = delete;
  ~Borrowed() { release(); }

  attn_tensor tensor{};
  /// Where the memory lives (dl::DeviceType).
  int32_t device = dl::kDLCPU;
  /// The object came through the buffer protocol (a numpy array).
  bool viaBuffer = false;

  /// Borrows `obj` (None leaves the tensor absent). `writable`: the kernel
  /// writes it. Raises TypeError / ValueError naming `name`.
  void borrow(py::handle obj, const char *name, bool writable) {
    release();
    tensor = attn_tensor{};
    if (obj.is_none())
      return;
    if (PyObject_CheckBuffer(obj.ptr())) {
      borrowBuffer(obj, name, writable);
      return;
    }
    // Plain PyTorch tensors: read their layout directly (the same zero-copy
    // view DLPack would give, without exporting a capsule per call).
    if (const TorchTypes *torch = torchTypes()) {
      PyTypeObject *type = Py_TYPE(obj.ptr());
      if (type == torch->tensor || type == torch->parameter) {
        borrowTorch(obj, name, *torch);
        return;
      }
    }
    if (PyObject_HasAttrString(obj.ptr(), "__dlpack__")) {
      borrowDLPack(obj, name, writable);
      return;
    }
    throw py::type_error(std::string(name) +
                         ": expected a numpy array or a tensor with "
                         "__dlpack__, got " +
                         std::string(py::str(obj.get_type().attr("__name__"))));
  }

  int rank() const { return tensor.rank; }

private:
  void release() {
    if (hasView) {
      PyBuffer_Release(&view);
      hasView = false;
    }
    if (legacy) {
      if (legacy->deleter)
        legacy->deleter(legacy);
      legacy = nullptr;
    }
    if (versioned) {
      if (versioned->deleter)
        versioned->deleter(versioned);
      versioned = nullptr;
    }
  }

  [[noreturn]] static void valueError(const char *name, const std::string &m) {
    throw py::value_error(std::string(name) + ": " + m);
  }

  void borrowBuffer(py::handle obj, const char *name, bool writable) {
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj.ptr(), &view, flags) != 0) {
      PyErr_Clear();
      valueError(name, writable ? "the array is not writable (or exposes no "
                                  "strided buffer)"
                                : "the object exposes no strided buffer");
    }
    hasView = true;
    viaBuffer = true;
    const char *fmt = view.format ? view.format : "B";
    if (*fmt == '>' || *fmt == '!')
      valueError(name, "big-endian arrays are not supported");
    if (*fmt == '@' || *fmt == '=' || *fmt == '<')
      ++fmt;
    attn_dtype dtype;
    if (fmt[1] != '\0')
      valueError(name, std::string("unsupported element format '") +
                           view.format + "'");
    switch (fmt[0]) {
    case 'f':
      dtype = ATTN_DTYPE_F32;
      break;
    case 'e':
      dtype = ATTN_DTYPE_F16;
      break;
    case '?':
      dtype = ATTN_DTYPE_BOOL;
      break;
    case 'i':
    case 'l':
    case 'q':
      if (view.itemsize == 4)
        dtype = ATTN_DTYPE_I32;
      else if (view.itemsize == 8)
        dtype = ATTN_DTYPE_I64;
      else
        valueError(name,
                   "unsupported integer size " + std::to_string(view.itemsize));
      break;
    default:
      valueError(name, std::string("unsupported dtype (buffer format '") +
                           view.format +
                           "'): use float32, float16, bool, int32 or int64");
    }
    if (static_cast<size_t>(view.itemsize) != attn_dtype_size(dtype))
      valueError(name,
                 "unexpected element size " + std::to_string(view.itemsize));
    if (view.ndim > 4)
      valueError(name, "rank " + std::to_string(view.ndim) + " is above 4");
    tensor.data = view.buf;
    tensor.dtype = dtype;
    tensor.rank = view.ndim;
    for (int i = 0; i < view.ndim; ++i) {
      tensor.shape[i] = view.shape[i];
      if (view.strides[i] % view.itemsize != 0)
        valueError(name, "strides must be multiples of the element size");
      tensor.strides[i] = view.strides[i] / view.itemsize;
    }
    finish(name);
  }

  void borrowDLPack(py::handle obj, const char *name, bool writable) {
    PyTypeObject *type = Py_TYPE(obj.ptr());
    auto &legacyTypes = legacyDLPackTypes();
    bool askVersioned = std::find(legacyTypes.begin(), legacyTypes.end(),
                                  type) == legacyTypes.end();
    py::object capsule;
    if (askVersioned) {
      try {
        capsule = obj.attr("__dlpack__")(py::arg("max_version") =
                                             py::make_tuple(1, 0));
      } catch (py::error_already_set &e) {
        if (!e.matches(PyExc_TypeError))
          throw;
        legacyTypes.push_back(type);
        askVersioned = false;
      }
    }
    if (!askVersioned)
      capsule = obj.attr("__dlpack__")();
    if (!PyCapsule_CheckExact(capsule.ptr()))
      valueError(name, "__dlpack__ did not return a capsule");
    const char *capName = PyCapsule_GetName(capsule.ptr());
    dl::Tensor *t = nullptr;
    uint64_t flags = 0;
    if (capName && std::strcmp(capName, "dltensor_versioned") == 0) {
      versioned = static_cast<dl::ManagedTensorVersioned *>(
          PyCapsule_GetPointer(capsule.ptr(), "dltensor_versioned"));
      if (!versioned)
        throw py::error_already_set();
      PyCapsule_SetName(capsule.ptr(), "used_dltensor_versioned");
      if (versioned->version.major != 1)
        valueError(name, "unsupported DLPack version " +
                             std::to_string(versioned->version.major));
      t = &versioned->dlTensor;
      flags = versioned->flags;
    } else if (capName && std::strcmp(capName, "dltensor") == 0) {
      legacy = static_cast<dl::ManagedTensor *>(
          PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
      if (!legacy)
        throw py::error_already_set();
      PyCapsule_SetName(capsule.ptr(), "used_dltensor");
      t = &legacy->dlTensor;
    } else {
      valueError(name, std::string("unexpected DLPack capsule '") +
                           (capName ? capName : "") + "'");
    }
    if (writable && (flags & dl::kFlagReadOnly))
      valueError(name, "the tensor is read-only");
    device = t->device.deviceType;
    if (t->dtype.lanes != 1)
      valueError(name, "vector element types are not supported");
    attn_dtype dtype;
    uint8_t code = t->dtype.code, bits = t->dtype.bits;
    if (code == dl::kDLFloat && bits == 32)
      dtype = ATTN_DTYPE_F32;
    else if (code == dl::kDLFloat && bits == 16)
      dtype = ATTN_DTYPE_F16;
    else if (code == dl::kDLBfloat && bits == 16)
      dtype = ATTN_DTYPE_BF16;
    else if (code == dl::kDLBool && bits == 8)
      dtype = ATTN_DTYPE_BOOL;
    else if (code == dl::kDLInt && bits == 32)
      dtype = ATTN_DTYPE_I32;
    else if (code == dl::kDLInt && bits == 64)
      dtype = ATTN_DTYPE_I64;
    else
      valueError(name, "unsupported dtype (DLPack code " +
                           std::to_string(code) + ", " + std::to_string(bits) +
                           " bits): use float32, float16, bfloat16, bool, "
                           "int32 or int64");
    if (t->ndim > 4 || t->ndim < 0)
      valueError(name, "rank " + std::to_string(t->ndim) + " is above 4");
    tensor.data = static_cast<char *>(t->data) + t->byteOffset;
    tensor.dtype = dtype;
    tensor.rank = t->ndim;
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; --i) {
      tensor.shape[i] = t->shape[i];
      tensor.strides[i] = t->strides ? t->strides[i] : stride;
      stride *= t->shape[i];
    }
    finish(name);
  }

  /// getattr(obj, name) with an interned name; raises on failure.
  static py::object getAttr(py::handle obj, PyObject *name) {
    PyObject *r = PyObject_GetAttr(obj.ptr(), name);
    if (!r)
      throw py::error_already_set();
    return py::reinterpret_steal<py::object>(r);
  }
  static py::object callMethod(py::handle obj, PyObject *name) {
    PyObject *r = PyObject_CallMethodNoArgs(obj.ptr(), name);
    if (!r)
      throw py::error_already_set();
    return py::reinterpret_steal<py::object>(r);
  }

  void borrowTorch(py::handle obj, const char *name, const TorchTypes &torch) {
    py::object dt = getAttr(obj, torch.sDtype.ptr());
    attn_dtype dtype;
    if (dt.is(torch.f32))
      dtype = ATTN_DTYPE_F32;
    else if (dt.is(torch.f16))
      dtype = ATTN_DTYPE_F16;
    else if (dt.is(torch.bf16))
      dtype = ATTN_DTYPE_BF16;
    else if (dt.is(torch.boolean))
      dtype = ATTN_DTYPE_BOOL;
    else if (dt.is(torch.i32))
      dtype = ATTN_DTYPE_I32;
    else if (dt.is(torch.i64))
      dtype = ATTN_DTYPE_I64;
    else
      valueError(name, "unsupported dtype " + std::string(py::str(dt)) +
                           ": use float32, float16, bfloat16, bool, int32 or "
                           "int64");
    // The kernels have no backward pass yet: a result computed from tensors
    // autograd tracks would silently get no gradient.
    if (getAttr(obj, torch.sRequiresGrad.ptr()).ptr() == Py_True &&
        torch.isGradEnabled().ptr() == Py_True)
      valueError(name, "requires grad, and attn-mlir has no backward pass yet "
                       "(the result would get no gradient): call it under "
                       "torch.no_grad() or torch.inference_mode(), or pass "
                       "detach()ed tensors");
    // Sparse and other non-strided layouts have no data_ptr (it raises).
    if (callMethod(obj, torch.sIsNeg.ptr()).ptr() == Py_True)
      valueError(name, "tensors with the negative bit set are not supported");
    if (getAttr(obj, torch.sIsCpu.ptr()).ptr() == Py_True)
      device = dl::kDLCPU;
    else if (getAttr(obj, torch.sIsCuda.ptr()).ptr() == Py_True)
      device = dl::kDLCUDA;
    else
      device = -1;
    py::object shape = getAttr(obj, torch.sShape.ptr());
    py::object strides = callMethod(obj, torch.sStride.ptr());
    if (!PyTuple_Check(shape.ptr()) || !PyTuple_Check(strides.ptr()))
      valueError(name, "unexpected shape or stride type");
    Py_ssize_t rank = PyTuple_GET_SIZE(shape.ptr());
    if (rank > 4 || PyTuple_GET_SIZE(strides.ptr()) != rank)
      valueError(name, "rank " + std::to_string(rank) + " is above 4");
    tensor.dtype = dtype;
    tensor.rank = static_cast<int32_t>(rank);
    for (Py_ssize_t i = 0; i < rank; ++i) {
      tensor.shape[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape.ptr(), i));
      tensor.strides[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(strides.ptr(), i));
    }
    py::object ptr = callMethod(obj, torch.sDataPtr.ptr());
    tensor.data = PyLong_AsVoidPtr(ptr.ptr());
    if (PyErr_Occurred())
      throw py::error_already_set();
    finish(name);
  }

  /// Common checks and normalisation.
  void finish(const char *name) {
    if (!tensor.data)
      valueError(name, "the tensor has no data (is it empty?)");
    // A size-1 dimension is never stepped over: its stride is irrelevant
    // (frameworks report anything there).
    if (tensor.rank > 0 && tensor.shape[tensor.rank - 1] == 1)
      tensor.strides[tensor.rank - 1] = 1;
  }

  Py_buffer view{};
  bool hasView = false;
  dl::ManagedTensor *legacy = nullptr;
  dl::ManagedTensorVersioned *versioned = nullptr;
};

//===----------------------------------------------------------------------===//
// Context and Kernel
//===----------------------------------------------------------------------===//

/// Allocates outputs for non-numpy inputs: set by attn_mlir/__init__.py,
/// called as allocator(like, shape, dtype_name).
py::object &outputAllocator() {
  static py::object *alloc = new py::object();
  return *alloc;
}

py::object &numpyEmpty() {
  static py::object *empty = nullptr;
  if (!empty)
    empty = new py::object(py::module_::import("numpy").attr("empty"));
  return *empty;
}

class Kernel {
public:
  Kernel(attn_kernel *kernel, std::string target)
      : kernel(kernel), target(std::move(target)) {
    for (int op = 0; op < 7; ++op)
      check(attn_kernel_operand_info(kernel, static_cast<attn_operand>(op),
                                     &operands[op]));
    check(attn_kernel_get_info(kernel, &info));
    int32_t numCaptures = 0;
    check(attn_kernel_num_captures(kernel, &numCaptures));
    captures.resize(numCaptures);
    for (int32_t i = 0; i < numCaptures; ++i)
      check(attn_kernel_capture_info(kernel, i, &captures[i]));
    size_t needed = 0;
    attn_kernel_spec_json(kernel, nullptr, 0, &needed);
    specJson.resize(needed);
    check(attn_kernel_spec_json(kernel, specJson.data(), needed, nullptr));
    specJson.resize(needed - 1);
  }
  ~Kernel() { attn_kernel_destroy(kernel); }
  Kernel(const Kernel &) = delete;
  Kernel &operator=(const Kernel &) = delete;

  const attn_operand_info &operand(attn_operand op) const {
    return operands[op];
  }

  py::object call(py::handle q, py::handle k, py::handle v, py::handle mask,
                  py::handle kvLens, py::handle out, py::handle lse,
                  std::optional<bool> returnLse, py::handle captureArgs) {
    bool specLse = operands[ATTN_OPERAND_LSE].required;
    bool wantLse = returnLse.value_or(specLse);
    if (wantLse && !specLse)
      throw py::value_error("lse: the kernel was compiled without the "
                            "log-sum-exp: compile the spec with \"lse\": true");
    if (!specLse && !lse.is_none())
      throw py::value_error("lse: given, but the spec does not return the "
                            "log-sum-exp");
    Borrowed bq, bk, bv, bmask, blens, bout, blse;
    bq.borrow(q, "query", false);
    bk.borrow(k, "key", false);
    bv.borrow(v, "value", false);
    bmask.borrow(mask, "mask", false);
    blens.borrow(kvLens, "kv_lens", false);
    if (bq.tensor.data == nullptr)
      throw py::value_error("query: missing");
    if (bq.rank() != 4)
      throw py::value_error("query: expected rank 4 [B, Hq, Sq, D], got rank " +
                            std::to_string(bq.rank()));
    checkDevice(bq, "query");
    checkDevice(bk, "key");
    checkDevice(bv, "value");
    checkDevice(bmask, "mask");
    checkDevice(blens, "kv_lens");
    // The captures of the spec's score_mod / mask_mod: a dict by name or a
    // sequence in the kernel's order (Kernel.captures).
    std::vector<std::unique_ptr<Borrowed>> bcaptures;
    std::vector<attn_tensor> captureTensors;
    if (!captureArgs.is_none()) {
      std::vector<py::object> given;
      if (py::isinstance<py::dict>(captureArgs)) {
        py::dict d = py::reinterpret_borrow<py::dict>(captureArgs);
        for (auto item : d) {
          std::string name = py::str(item.first);
          if (!hasCapture(name))
            throw py::value_error("captures: the kernel reads no capture '" +
                                  name + "' (it reads " + captureList() + ")");
        }
        for (const attn_capture_info &c : captures) {
          if (!d.contains(c.name))
            throw py::value_error(std::string(c.name) +
                                  ": missing from captures (the kernel "
                                  "reads " +
                                  captureList() + ")");
          given.push_back(d[c.name]);
        }
      } else {
        for (py::handle h : captureArgs)
          given.push_back(py::reinterpret_borrow<py::object>(h));
      }
      for (size_t i = 0; i < given.size(); ++i) {
        std::string name = i < captures.size() ? captures[i].name
                                               : "capture " + std::to_string(i);
        bcaptures.push_back(std::make_unique<Borrowed>());
        bcaptures.back()->borrow(given[i], name.c_str(), false);
        checkDevice(*bcaptures.back(), name.c_str());
        captureTensors.push_back(bcaptures.back()->tensor);
      }
    }

    const attn_operand_info &oo = operands[ATTN_OPERAND_OUTPUT];
    // The outputs are sized from the spec: the query must match it first
    // (a spec of 2^31 heads never allocates for a small query).
    const attn_operand_info &qo = operands[ATTN_OPERAND_QUERY];
    for (int i = 0; i < 4; ++i)
      if ((qo.shape[i] >= 0 && bq.tensor.shape[i] != qo.shape[i]) ||
          bq.tensor.shape[i] < 0)
        throw py::value_error(
            "query: shape [" + std::to_string(bq.tensor.shape[0]) + ", " +
            std::to_string(bq.tensor.shape[1]) + ", " +
            std::to_string(bq.tensor.shape[2]) + ", " +
            std::to_string(bq.tensor.shape[3]) +
            "] does not match the kernel's spec");
    int64_t batch = oo.shape[0] >= 0 ? oo.shape[0] : bq.tensor.shape[0];
    int64_t qLen = oo.shape[2] >= 0 ? oo.shape[2] : bq.tensor.shape[2];
    py::object outObj = py::reinterpret_borrow<py::object>(out);
    if (out.is_none())
      outObj =
          allocate(q, bq, {batch, oo.shape[1], qLen, oo.shape[3]}, oo.dtype);
    bout.borrow(outObj, "output", true);
    checkDevice(bout, "output");
    py::object lseObj = py::reinterpret_borrow<py::object>(lse);
    if (specLse) {
      if (lse.is_none())
        lseObj = allocate(q, bq, {batch, oo.shape[1], qLen}, ATTN_DTYPE_F32);
      blse.borrow(lseObj, "lse", true);
      checkDevice(blse, "lse");
    }

    attn_args args;
    attn_args_init(&args);
    args.query = bq.tensor;
    args.key = bk.tensor;
    args.value = bv.tensor;
    args.mask = bmask.tensor;
    args.kv_lens = blens.tensor;
    args.output = bout.tensor;
    args.lse = blse.tensor;
    args.num_captures = static_cast<int32_t>(captureTensors.size());
    args.captures = captureTensors.data();
    attn_status status;
    {
      py::gil_scoped_release release;
      status = attn_kernel_run(kernel, &args);
    }
    check(status);
    if (wantLse)
      return py::make_tuple(outObj, lseObj);
    return outObj;
  }

  attn_kernel *kernel;
  std::string target;
  std::string specJson;
  attn_kernel_info info{};
  /// The captures the kernel reads, in order (names live with the kernel).
  std::vector<attn_capture_info> captures;

  /// "q_document_ids, kv_document_ids", or "none".
  std::string captureList() const {
    std::string names;
    for (const attn_capture_info &c : captures)
      names += (names.empty() ? "" : ", ") + std::string(c.name);
    return names.empty() ? "none" : names;
  }
  bool hasCapture(const std::string &name) const {
    for (const attn_capture_info &c : captures)
      if (name == c.name)
        return true;
    return false;
  }

private:
  void checkDevice(const Borrowed &b, const char *name) const {
    if (!b.tensor.data)
      return;
    bool cpuMemory = b.device == dl::kDLCPU || b.device == dl::kDLCUDAHost;
    if (target == "cpu" && !cpuMemory)
      throw py::value_error(std::string(name) +
                            ": the tensor is on a device (DLPack device "
                            "type " +
                            std::to_string(b.device) +
                            "), the kernel is for the CPU");
    if (target == "cuda" && b.device != dl::kDLCUDA)
      throw py::value_error(std::string(name) +
                            ": the kernel is for CUDA, the tensor is not on "
                            "a CUDA device");
  }

  /// A new output like `like`: numpy for numpy inputs, else the registered
  /// allocator (a tensor of the same framework and device).
  py::object allocate(py::handle like, const Borrowed &b,
                      std::vector<int64_t> shape, attn_dtype dtype) const {
    py::tuple pyShape(shape.size());
    for (size_t i = 0; i < shape.size(); ++i)
      pyShape[i] = py::int_(shape[i]);
    if (!b.viaBuffer && outputAllocator())
      return outputAllocator()(like, pyShape, dtypeName(dtype));
    if (dtype == ATTN_DTYPE_BF16)
      throw py::value_error("output: numpy has no bfloat16: pass out= (a "
                            "DLPack tensor)");
    return numpyEmpty()(pyShape, dtypeName(dtype));
  }

  attn_operand_info operands[7];
};

class Context {
public:
  Context(const std::string &target, uint32_t threads,
          std::optional<std::string> cacheDir, uint32_t maxCachedKernels)
      : target(target) {
    attn_context_options o;
    attn_context_options_init(&o);
    if (target == "cpu")
      o.target = ATTN_TARGET_CPU;
    else if (target == "cuda")
      o.target = ATTN_TARGET_CUDA;
    else
      throw py::value_error("target: expected 'cpu' or 'cuda', got '" + target +
                            "'");
    o.num_threads = threads;
    o.max_cached_kernels = maxCachedKernels;
    if (cacheDir)
      o.cache_dir = cacheDir->c_str();
    check(attn_context_create(&o, &context));
  }
  ~Context() { attn_context_destroy(context); }
  Context(const Context &) = delete;
  Context &operator=(const Context &) = delete;

  std::unique_ptr<Kernel> compile(const std::string &specJson,
                                  std::optional<std::array<int64_t, 4>> tiles,
                                  int64_t kvSplits, bool reference,
                                  std::optional<std::string> cpuTarget) {
    attn_compile_options co;
    attn_compile_options_init(&co);
    if (tiles)
      for (int i = 0; i < 4; ++i)
        co.tile_sizes[i] = (*tiles)[i];
    co.kv_splits = kvSplits;
    co.unfused_reference = reference ? 1 : 0;
    if (cpuTarget)
      co.cpu_target = cpuTarget->c_str();
    attn_kernel *k = nullptr;
    attn_status status;
    {
      py::gil_scoped_release release;
      status = attn_kernel_compile_json(context, specJson.c_str(), &co, &k);
    }
    check(status);
    return std::make_unique<Kernel>(k, target);
  }

  py::dict cacheStats() const {
    attn_cache_stats s;
    check(attn_context_cache_stats(context, &s));
    py::dict d;
    d["compiles"] = s.compiles;
    d["memory_entries"] = s.memory_entries;
    d["disk_hits"] = s.disk_hits;
    d["disk_misses"] = s.disk_misses;
    d["disk_rejected"] = s.disk_rejected;
    d["disk_writes"] = s.disk_writes;
    d["disk_write_failures"] = s.disk_write_failures;
    return d;
  }

  attn_context *context = nullptr;
  std::string target;
};

const char *operandNames[] = {"query",   "key",    "value", "mask",
                              "kv_lens", "output", "lse"};

attn_operand parseOperand(const std::string &name) {
  for (int i = 0; i < 7; ++i)
    if (name == operandNames[i])
      return static_cast<attn_operand>(i);
  throw py::value_error("operand: expected one of query, key, value, mask, "
                        "kv_lens, output, lse; got '" +
                        name + "'");
}

} // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "attn-mlir JIT runtime bindings (use the attn_mlir package)";
  m.def(
      "fma_peak_gflops",
      [](uint32_t threads) {
        py::gil_scoped_release release;
        return attn_measure_fma_peak_gflops(threads);
      },
      py::arg("threads") = 0,
      "Measured FP32 FMA peak of this machine in GFLOP/s on `threads` "
      "threads (0: every core), ~0.3 s of 512-bit FMA chains.");
  m.def(
      "memory_bandwidth_gbs",
      [](uint32_t threads) {
        py::gil_scoped_release release;
        return attn_measure_memory_bandwidth_gbs(threads);
      },
      py::arg("threads") = 0,
      "Measured memory read bandwidth in GB/s on `threads` threads (0: every "
      "core), streaming 512 MiB.");
  m.def("max_threads", &attn_max_threads,
        "The most CPU worker threads a Context accepts (4 per core of this "
        "machine).");
  m.def(
      "cpu_target",
      [] {
        py::dict d;
        d["target"] = attn_cpu_target();
        d["cpu"] = attn_cpu_model();
        py::list available;
        std::string all = attn_cpu_targets();
        for (size_t start = 0; start < all.size();) {
          size_t end = all.find(',', start);
          if (end == std::string::npos)
            end = all.size();
          available.append(all.substr(start, end - start));
          start = end + 1;
        }
        d["available"] = available;
        return d;
      },
      "The CPU kernels' target: {'target': the level compiled for by "
      "default (the highest this CPU has, e.g. 'x86-64-v4-bf16'), 'cpu': "
      "the CPU's model name, 'available': the levels this CPU can run, "
      "lowest first (x86-64-v3: AVX2; x86-64-v4: AVX-512; x86-64-v4-bf16: "
      "+ AVX512-BF16; x86-64-v4-amx: + AMX)}.");
  m.def("version", &attn_version,
        "The compiler's identity: attn-mlir version, source revision, LLVM "
        "version.");
  m.def(
      "_set_allocator",
      [](py::object alloc) { outputAllocator() = std::move(alloc); },
      "Sets allocator(like, shape, dtype_name) -> tensor, used for outputs "
      "when the inputs are not numpy arrays.");

  py::class_<Kernel>(m, "Kernel", R"doc(
A compiled attention kernel for one spec (sizes, dtype, scale, masks).

Call it as ``kernel(q, k, v, mask=None, kv_lens=None, out=None, lse=None,
return_lse=None, captures=None)``. Arguments are numpy arrays or any DLPack tensor
(``__dlpack__``: PyTorch, JAX, ...) in host memory, read in place with their
strides (no copy) -- the innermost stride must be 1:

* q: [B, Hq, Sq, D], k: [B, Hkv, Sk, D], v: [B, Hkv, Sk, Dv], in the spec's
  dtype (float32, float16 or bfloat16);
* mask: [B|1, Hq|1, Sq|1, Sk] bool (True keeps a key) or float (added to the
  scaled scores), when the spec has a "tensor" mask;
* kv_lens: [B] int32/int64 (keys j >= kv_lens[b] are hidden), when the spec
  has a "key_padding" mask;
* captures: the inputs of the spec's mask_mod (``Kernel.captures``), a
  dict by name or a sequence in that order, e.g. {"q_document_ids": [B, Sq]
  int32, "kv_document_ids": [B, Sk] int32} for a "document" mask_mod;
* out: optional [B, Hq, Sq, Dv] output to write; lse: optional [B, Hq, Sq]
  float32 log-sum-exp to write (natural log of the scaled scores).

Returns the output (a new numpy array for numpy inputs, a tensor of the
input's framework otherwise, or ``out``), or ``(output, lse)`` when
return_lse is true (default: when the spec has "lse": true).

Raises ValueError when a shape, dtype, stride or device does not match the
spec (the message names the operand), TypeError for objects that are not
tensors. The GIL is released while the kernel runs.
)doc")
      .def("__call__", &Kernel::call, py::arg("q"), py::arg("k"), py::arg("v"),
           py::arg("mask") = py::none(), py::arg("kv_lens") = py::none(),
           py::arg("out") = py::none(), py::arg("lse") = py::none(),
           py::arg("return_lse") = py::none(), py::arg("captures") = py::none())
      .def_property_readonly(
          "captures",
          [](const Kernel &k) {
            py::list list;
            for (const attn_capture_info &c : k.captures) {
              py::tuple shape(c.rank);
              for (int d = 0; d < c.rank; ++d)
                shape[d] = c.shape[d] < 0 ? py::object(py::none())
                                          : py::object(py::int_(c.shape[d]));
              list.append(py::make_tuple(c.name, shape, dtypeName(c.dtype)));
            }
            return list;
          },
          "The inputs the spec's mask_mod reads (its captures), in the order "
          "`captures=` takes a sequence: a list of (name, shape, dtype_name), "
          "None for sizes the spec leaves dynamic; [] when it reads none.")
      .def_property_readonly(
          "spec_json", [](const Kernel &k) { return k.specJson; },
          "The canonical spec JSON of the kernel (every field explicit).")
      .def_property_readonly(
          "target", [](const Kernel &k) { return k.target; },
          "'cpu' or 'cuda'.")
      .def_property_readonly(
          "tile_sizes",
          [](const Kernel &k) {
            return py::make_tuple(k.info.tile_sizes[0], k.info.tile_sizes[1],
                                  k.info.tile_sizes[2], k.info.tile_sizes[3]);
          },
          "Tile sizes (batch, heads, query, key) the compiler chose.")
      .def_property_readonly(
          "kv_splits", [](const Kernel &k) { return k.info.kv_splits; },
          "Split-KV key splits (1: none).")
      .def_property_readonly(
          "compile_ms", [](const Kernel &k) { return k.info.compile_ms; },
          "Time the compiler ran for this kernel, in ms (0.0 when it came "
          "from the disk cache).")
      .def_property_readonly(
          "load_ms", [](const Kernel &k) { return k.info.load_ms; },
          "Time spent loading its object code into the JIT, in ms.")
      .def_property_readonly(
          "from_disk_cache",
          [](const Kernel &k) { return k.info.from_disk_cache != 0; },
          "True when the object code came from the on-disk cache.")
      .def(
          "operand_info",
          [](const Kernel &k, const std::string &name) -> py::object {
            const attn_operand_info &i = k.operand(parseOperand(name));
            if (!i.required)
              return py::none();
            py::tuple shape(i.rank);
            for (int d = 0; d < i.rank; ++d)
              shape[d] = i.shape[d] < 0 ? py::object(py::none())
                                        : py::object(py::int_(i.shape[d]));
            return py::make_tuple(shape, dtypeName(i.dtype));
          },
          py::arg("name"),
          "(shape, dtype_name) the kernel expects for an operand ('query', "
          "'key', 'value', 'mask', 'kv_lens', 'output', 'lse'), with None for "
          "sizes the spec leaves dynamic; None when the kernel does not take "
          "that operand. Raises ValueError for an unknown name.")
      .def(
          "flops",
          [](const Kernel &k, int64_t b, int64_t sq, int64_t sk) {
            double f = 0;
            check(attn_kernel_flops(k.kernel, b, sq, sk, &f));
            return f;
          },
          py::arg("batch"), py::arg("q_len"), py::arg("kv_len"),
          "Floating-point operations of one run at these sizes.")
      .def(
          "workspace_bytes",
          [](const Kernel &k, int64_t b, int64_t sq, int64_t sk) {
            size_t n = 0;
            check(attn_kernel_workspace_bytes(k.kernel, b, sq, sk, &n));
            return n;
          },
          py::arg("batch"), py::arg("q_len"), py::arg("kv_len"),
          "Scratch bytes a run needs from the caller (0 on the CPU).")
      .def("__repr__", [](const Kernel &k) {
        return "<attn_mlir.Kernel " + k.target + " " + k.specJson + ">";
      });

  py::class_<Context>(m, "Context", R"doc(
A compiler and runtime instance: target, worker threads and kernel caches.

Context(target="cpu", threads=0, cache_dir=None): threads=0 uses every core;
cache_dir=None takes the on-disk cache directory from $ATTN_MLIR_CACHE_DIR
(set to "": none), else the per-user $XDG_CACHE_HOME/attn-mlir or
~/.cache/attn-mlir (created 0700; none when it cannot be used); "" disables
it. Raises RuntimeError when the
cache directory is refused (owned by another user, group- or world-writable) or
cannot be created, ValueError for an unknown target.
)doc")
      .def(
          py::init<const std::string &, uint32_t, std::optional<std::string>,
                   uint32_t>(),
          py::arg("target") = "cpu", py::arg("threads") = 0,
          py::arg("cache_dir") = py::none(), py::arg("max_cached_kernels") = 256)
      .def("compile", &Context::compile, py::arg("spec_json"),
           py::arg("tile_sizes") = py::none(), py::arg("kv_splits") = 0,
           py::arg("reference") = false, py::arg("cpu_target") = py::none(),
           R"doc(Compiles a spec (JSON text) into a Kernel, or returns the
cached one. tile_sizes: (batch, heads, query, key) or None for the
compiler's choice; kv_splits: split-KV key splits (0: the compiler's
choice); reference=True compiles the unfused reference lowering (whole
score matrix in memory, one thread: a benchmark baseline); cpu_target: a
CPU target level (attn_mlir.cpu_target()["available"]), None for this
CPU's highest. Raises
ValueError for an invalid spec (the message names the key), RuntimeError
when compilation fails or the target is unavailable. The GIL is released
while compiling.)doc")
      .def_property_readonly("target",
                             [](const Context &c) { return c.target; })
      .def_property_readonly(
          "num_threads",
          [](const Context &c) {
            uint32_t n = 0;
            check(attn_context_num_threads(c.context, &n));
            return n;
          },
          "Number of CPU worker threads.")
      .def_property_readonly(
          "cache_dir",
          [](const Context &c) {
            const char *d = "";
            check(attn_context_cache_dir(c.context, &d));
            return std::string(d);
          },
          "The on-disk cache directory in use ('' when none).")
      .def("clear_cache",
           [](Context &c) { check(attn_context_clear_cache(c.context)); },
           "Empties the in-memory kernel cache (kernels already returned stay "
           "usable; the disk cache is kept). At most max_cached_kernels "
           "(default 256, 0: no bound) are kept anyway, least recently used "
           "dropped first.")
      .def("cache_stats", &Context::cacheStats,
           "Counters of the kernel caches: compiles, memory_entries, "
           "disk_hits, disk_misses, disk_rejected, disk_writes, "
           "disk_write_failures.");
}
