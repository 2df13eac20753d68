//===- Npy.h - NumPy .npy reading and writing -------------------*- C++ -*-===//
//
// The .npy format (NEP 1, versions 1.0-3.0), C order, little-endian, for the
// element types of the runtime: f32 ('<f4'), f16 ('<f2'), bool ('|b1'),
// i32 ('<i4'), i64 ('<i8'). f64 ('<f8') arrays are read and converted to f32.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_RUNTIME_NPY_H
#define ATTN_RUNTIME_NPY_H

#include "attn/Runtime/Spec.h"

#include <string>
#include <vector>

namespace attn {

/// A dense C-ordered array.
struct NpyArray {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<char> data; // numElements() * dtypeSize(dtype) bytes

  int64_t numElements() const;
  template <typename T> T *as() { return reinterpret_cast<T *>(data.data()); }
  template <typename T> const T *as() const {
    return reinterpret_cast<const T *>(data.data());
  }
};

/// Reads `path`. Errors name the file and the problem (not .npy, Fortran
/// order, big-endian, unsupported dtype, truncated data).
llvm::Expected<NpyArray> readNpy(const std::string &path);

/// Writes `array` to `path` atomically: to a temporary file in the same
/// directory, renamed over `path` once complete, so a failure never leaves a
/// partial file.
llvm::Error writeNpy(const std::string &path, const NpyArray &array);

/// Writes `bytes` to `path` atomically, like writeNpy (used for PTX and cubin
/// files). Errors name the file.
llvm::Error writeFileAtomically(const std::string &path, llvm::StringRef bytes);

} // namespace attn

#endif // ATTN_RUNTIME_NPY_H
