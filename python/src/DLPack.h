//===- DLPack.h - the DLPack tensor structs ---------------------*- C++ -*-===//
//
// The data structures of the DLPack exchange protocol, written from the
// public specification (https://dmlc.github.io/dlpack/latest/c_api.html and
// the Python array API's __dlpack__ protocol), versions 0.8 (DLManagedTensor,
// capsule "dltensor") and 1.x (DLManagedTensorVersioned, capsule
// "dltensor_versioned"). Only what a consumer needs.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_PYTHON_DLPACK_H
#define ATTN_PYTHON_DLPACK_H

#include <cstdint>

namespace attn {
namespace dlpack {

/// DLDeviceType values used here.
enum DeviceType : int32_t {
  kDLCPU = 1,
  kDLCUDA = 2,
  kDLCUDAHost = 3, // pinned host memory, readable by the CPU
  kDLROCM = 10,
};

struct Device {
  int32_t deviceType; // DeviceType
  int32_t deviceId;
};

/// DLDataTypeCode values.
enum TypeCode : uint8_t {
  kDLInt = 0,
  kDLUInt = 1,
  kDLFloat = 2,
  kDLOpaqueHandle = 3,
  kDLBfloat = 4,
  kDLComplex = 5,
  kDLBool = 6,
};

struct DataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};

struct Tensor {
  void *data;
  Device device;
  int32_t ndim;
  DataType dtype;
  int64_t *shape;
  int64_t *strides; // in elements; NULL means compact row-major
  uint64_t byteOffset;
};

/// Capsule "dltensor" (renamed "used_dltensor" once consumed).
struct ManagedTensor {
  Tensor dlTensor;
  void *managerCtx;
  void (*deleter)(ManagedTensor *self);
};

struct PackVersion {
  uint32_t major;
  uint32_t minor;
};

/// Capsule "dltensor_versioned" (renamed "used_dltensor_versioned").
struct ManagedTensorVersioned {
  PackVersion version;
  void *managerCtx;
  void (*deleter)(ManagedTensorVersioned *self);
  uint64_t flags;
  Tensor dlTensor;
};

/// ManagedTensorVersioned::flags bits.
constexpr uint64_t kFlagReadOnly = 1ull << 0;
constexpr uint64_t kFlagIsCopied = 1ull << 1;

} // namespace dlpack
} // namespace attn

#endif // ATTN_PYTHON_DLPACK_H
