//===- Npy.cpp - NumPy .npy reading and writing ---------------------------===//

#include "attn/Runtime/Npy.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <regex>

using namespace attn;

int64_t NpyArray::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

static llvm::Error npyError(const std::string &path, const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 path + ": " + msg);
}

static const char *descrOf(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "<f4";
  case DType::F16:
    return "<f2";
  case DType::Bool:
    return "|b1";
  case DType::I32:
    return "<i4";
  case DType::I64:
    return "<i8";
  case DType::BF16:
    return nullptr;
  }
  return nullptr;
}

llvm::Expected<NpyArray> attn::readNpy(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return npyError(path, "cannot read: " + buffer.getError().message());
  llvm::StringRef bytes = (*buffer)->getBuffer();
  if (bytes.size() < 10 || !bytes.starts_with("\x93NUMPY"))
    return npyError(path, "not a .npy file");
  unsigned major = static_cast<unsigned char>(bytes[6]);
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = static_cast<unsigned char>(bytes[8]) |
                (static_cast<unsigned char>(bytes[9]) << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      return npyError(path, "truncated header");
    headerLen = 0;
    for (int i = 0; i < 4; ++i)
      headerLen |= size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    headerStart = 12;
  } else {
    return npyError(path, "unsupported .npy version " + llvm::Twine(major));
  }
  if (headerStart + headerLen > bytes.size())
    return npyError(path, "truncated header");
  std::string header = bytes.substr(headerStart, headerLen).str();

  std::smatch match;
  if (!std::regex_search(header, match,
                         std::regex("'descr'\\s*:\\s*'([^']*)'")))
    return npyError(path, "header has no 'descr'");
  std::string descr = match[1];
  if (!std::regex_search(header, match,
                         std::regex("'fortran_order'\\s*:\\s*(True|False)")))
    return npyError(path, "header has no 'fortran_order'");
  if (match[1] == "True")
    return npyError(path, "Fortran-ordered arrays are not supported; save "
                          "with numpy.ascontiguousarray");
  if (!std::regex_search(header, match,
                         std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")))
    return npyError(path, "header has no 'shape'");
  NpyArray array;
  std::string dims = match[1];
  std::regex number("\\d+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), number);
       it != std::sregex_iterator(); ++it) {
    std::string digits = it->str();
    if (digits.size() > 12)
      return npyError(path, "dimension too large");
    array.shape.push_back(std::stoll(digits));
  }

  bool fromF64 = false;
  if (descr == "<f8") {
    fromF64 = true;
    array.dtype = DType::F32;
  } else {
    bool found = false;
    for (DType d : {DType::F32, DType::F16, DType::Bool, DType::I32,
                    DType::I64})
      if (descr == descrOf(d) || (d == DType::Bool && descr == "<b1")) {
        array.dtype = d;
        found = true;
      }
    if (!found)
      return npyError(path, "unsupported dtype '" + descr +
                                "' (expected <f4, <f2, <f8, |b1, <i4 or <i8, "
                                "little-endian)");
  }
  int64_t count = 1;
  for (int64_t d : array.shape)
    if (__builtin_mul_overflow(count, d, &count))
      return npyError(path, "shape overflows");
  int64_t srcSize = fromF64 ? 8 : dtypeSize(array.dtype);
  int64_t payload;
  if (__builtin_mul_overflow(count, srcSize, &payload))
    return npyError(path, "shape overflows");
  size_t dataStart = headerStart + headerLen;
  if (bytes.size() - dataStart != static_cast<uint64_t>(payload))
    return npyError(path, "data size " + llvm::Twine(bytes.size() - dataStart) +
                              " bytes does not match the header (" +
                              llvm::Twine(payload) + " bytes expected)");
  const char *src = bytes.data() + dataStart;
  if (fromF64) {
    array.data.resize(count * 4);
    float *dst = array.as<float>();
    for (int64_t i = 0; i < count; ++i) {
      double v;
      std::memcpy(&v, src + 8 * i, 8);
      dst[i] = static_cast<float>(v);
    }
  } else {
    array.data.assign(src, src + payload);
  }
  return array;
}

llvm::Error attn::writeNpy(const std::string &path, const NpyArray &array) {
  const char *descr = descrOf(array.dtype);
  if (!descr)
    return npyError(path, llvm::Twine("cannot write dtype ") +
                              dtypeName(array.dtype) + " to .npy");
  std::string shape;
  for (int64_t d : array.shape)
    shape += std::to_string(d) + ", ";
  if (array.shape.size() > 1)
    shape.resize(shape.size() - 1); // (2, 3) but (2,)
  std::string header = "{'descr': '" + std::string(descr) +
                       "', 'fortran_order': False, 'shape': (" + shape +
                       "), }";
  // Pad so that the data starts on a 64-byte boundary, ending with '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';

  llvm::SmallString<256> tmp;
  int fd;
  if (auto ec = llvm::sys::fs::createUniqueFile(path + ".tmp-%%%%%%", fd, tmp))
    return npyError(path, "cannot create: " + ec.message());
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << "\x93NUMPY" << char(1) << char(0);
    os << char(header.size() & 0xff) << char((header.size() >> 8) & 0xff);
    os << header;
    os.write(array.data.data(), array.data.size());
    os.close();
    if (os.has_error()) {
      os.clear_error();
      llvm::sys::fs::remove(tmp);
      return npyError(path, "write failed");
    }
  }
  if (auto ec = llvm::sys::fs::rename(tmp, path)) {
    llvm::sys::fs::remove(tmp);
    return npyError(path, "cannot write: " + ec.message());
  }
  return llvm::Error::success();
}

llvm::Error attn::writeFileAtomically(const std::string &path,
                                      llvm::StringRef bytes) {
  auto fail = [&](const llvm::Twine &msg) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   path + ": " + msg);
  };
  llvm::SmallString<256> tmp;
  int fd;
  if (auto ec = llvm::sys::fs::createUniqueFile(path + ".tmp-%%%%%%", fd, tmp))
    return fail("cannot create: " + ec.message());
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << bytes;
    os.close();
    if (os.has_error()) {
      os.clear_error();
      llvm::sys::fs::remove(tmp);
      return fail("write failed");
    }
  }
  if (auto ec = llvm::sys::fs::rename(tmp, path)) {
    llvm::sys::fs::remove(tmp);
    return fail("cannot write: " + ec.message());
  }
  return llvm::Error::success();
}
