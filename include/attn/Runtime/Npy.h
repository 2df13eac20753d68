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

/// The largest .npy payload readNpy accepts by default: 2^46 bytes, the
/// spec's limit on one tensor.
constexpr int64_t kMaxNpyBytes = int64_t(1) << 46;

/// Reads `path` (a regular file, a FIFO or a device: it is read as a stream
/// and never past the header's payload). Errors name the file and the
/// problem: not .npy, a malformed header (the shape must be a tuple of
/// non-negative integers), Fortran order, big-endian, unsupported dtype,
/// truncated or trailing data, a payload over `maxBytes` (in bytes of the
/// file's own dtype: "shape [1, 2, 64, 64] does not fit the expected
/// [1, 2, 48, 64]" when the caller names the shape it expects in
/// `expectedShape`, else the file's shape and the byte counts).
llvm::Expected<NpyArray> readNpy(const std::string &path,
                                 int64_t maxBytes = kMaxNpyBytes,
                                 llvm::StringRef expectedShape = "");

/// The bytes of `array` as a .npy file (version 1.0, data on a 64-byte
/// boundary). Errors: bf16, which .npy has no descr for.
llvm::Expected<std::string> npyBytes(const NpyArray &array);

/// An output file checked before anything runs and written at the end, so
/// that a program writes all its outputs or none. A regular file (or a path
/// that does not exist yet) is written atomically: open() creates the
/// temporary file beside it, write() fills it and renames it over the path,
/// and a destroyed OutputFile that was never written removes it. Anything
/// else (a device such as /dev/null or /dev/stdout, a FIFO, a symlink) is
/// written in place through the path, never replaced: open() checks it can
/// be written (access W_OK), write() opens it for writing then (a FIFO
/// without blocking: one with no reader is an error, "no process reads
/// it"). Errors name the file. Several outputs are written all or none by
/// writeOutputs.
class OutputFile {
public:
  static llvm::Expected<OutputFile> open(const std::string &path);
  OutputFile(OutputFile &&other);
  OutputFile &operator=(OutputFile &&other) = delete;
  ~OutputFile();

  /// Writes `bytes` (once): stage() then commit().
  llvm::Error write(llvm::StringRef bytes);
  /// Writes `bytes` (once) to the temporary file of an atomic write, or in
  /// place to a special file; the path itself is not replaced yet.
  llvm::Error stage(llvm::StringRef bytes);
  /// Renames the staged temporary file over the path (nothing to do for an
  /// in-place write).
  llvm::Error commit();
  /// Whether the file is written in place (a device, FIFO or symlink).
  bool inPlace() const { return temp_.empty(); }
  const std::string &path() const { return path_; }

private:
  OutputFile() = default;
  std::string path_;
  /// The temporary file of an atomic write ("" for an in-place write).
  std::string temp_;
  int fd_ = -1;
  /// Written (in place) or renamed (atomic): nothing more to do.
  bool staged_ = false;
};

/// Writes several outputs all or none: first every atomic one to its
/// temporary file, then the in-place ones (devices, FIFOs), and only when all
/// of that succeeded the renames. On an error no regular file has been
/// replaced (an in-place file written before the error keeps what it got).
llvm::Error
writeOutputs(llvm::ArrayRef<std::pair<OutputFile *, llvm::StringRef>> outputs);

/// Writes `array` to `path` through an OutputFile.
llvm::Error writeNpy(const std::string &path, const NpyArray &array);

/// Writes `bytes` to `path` through an OutputFile (PTX and cubin files).
llvm::Error writeOutputFile(const std::string &path, llvm::StringRef bytes);

} // namespace attn

#endif // ATTN_RUNTIME_NPY_H
