//===- Npy.cpp - NumPy .npy reading and writing ---------------------------===//

#include "attn/Runtime/Npy.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <regex>
#include <sys/stat.h>
#include <unistd.h>

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

namespace {
/// Reads up to `n` bytes of `fd` into `buf`; returns how many were read
/// (fewer at end of file) or -1 with errno set.
int64_t readFully(int fd, char *buf, int64_t n) {
  int64_t done = 0;
  while (done < n) {
    ssize_t got = ::read(fd, buf + done, static_cast<size_t>(std::min<int64_t>(
                                             n - done, int64_t(1) << 30)));
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0)
      return -1;
    if (got == 0)
      break;
    done += got;
  }
  return done;
}

/// Closes a file descriptor on scope exit.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// Parses the shape tuple of a .npy header, e.g. "(1, 2, 16, 8)", "(5,)" or
/// "()": non-negative decimal integers separated by commas, an optional
/// trailing comma, nothing else.
std::optional<std::vector<int64_t>> parseShapeTuple(llvm::StringRef text) {
  text = text.trim();
  if (!text.consume_front("(") || !text.consume_back(")"))
    return std::nullopt;
  std::vector<int64_t> shape;
  text = text.trim();
  if (text.empty())
    return shape;
  llvm::SmallVector<llvm::StringRef> items;
  text.split(items, ',');
  if (items.back().trim().empty() && items.size() > 1)
    items.pop_back(); // (5,) and (2, 3,)
  for (llvm::StringRef item : items) {
    item = item.trim();
    // At most 12 digits: larger sizes overflow every product below.
    if (item.empty() || item.size() > 12 ||
        !llvm::all_of(item, [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    int64_t v = 0;
    for (char c : item)
      v = v * 10 + (c - '0');
    shape.push_back(v);
  }
  return shape;
}
} // namespace

llvm::Expected<NpyArray> attn::readNpy(const std::string &path,
                                       int64_t maxBytes,
                                       llvm::StringRef expectedShape) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return npyError(path, llvm::Twine("cannot read: ") + std::strerror(errno));
  FdCloser closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return npyError(path, llvm::Twine("cannot read: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode))
    return npyError(path, "cannot read: Is a directory");
  auto readError = [&]() {
    return npyError(path, llvm::Twine("cannot read: ") + std::strerror(errno));
  };

  char prefix[12];
  int64_t got = readFully(fd, prefix, 10);
  if (got < 0)
    return readError();
  if (got < 10 || std::memcmp(prefix, "\x93NUMPY", 6) != 0)
    return npyError(path, "not a .npy file");
  unsigned major = static_cast<unsigned char>(prefix[6]);
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = static_cast<unsigned char>(prefix[8]) |
                (static_cast<unsigned char>(prefix[9]) << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    got = readFully(fd, prefix + 10, 2);
    if (got < 0)
      return readError();
    if (got < 2)
      return npyError(path, "truncated header");
    headerLen = 0;
    for (int i = 0; i < 4; ++i)
      headerLen |= size_t(static_cast<unsigned char>(prefix[8 + i])) << (8 * i);
    headerStart = 12;
  } else {
    return npyError(path, "unsupported .npy version " + llvm::Twine(major));
  }
  // numpy writes headers of a few hundred bytes.
  if (headerLen > (1u << 20))
    return npyError(path, "header of " + llvm::Twine(headerLen) +
                              " bytes is longer than 1 MiB");
  std::string header(headerLen, '\0');
  got = readFully(fd, header.data(), static_cast<int64_t>(headerLen));
  if (got < 0)
    return readError();
  if (static_cast<size_t>(got) < headerLen)
    return npyError(path, "truncated header");

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
                         std::regex("'shape'\\s*:\\s*(\\([^)]*\\))")))
    return npyError(path, "header has no 'shape'");
  NpyArray array;
  std::string tuple = match[1];
  std::optional<std::vector<int64_t>> shape = parseShapeTuple(tuple);
  if (!shape)
    return npyError(path, "malformed shape " +
                              llvm::Twine(tuple.substr(0, 64)) +
                              " (expected a tuple of non-negative integers)");
  array.shape = std::move(*shape);

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
      return npyError(path, "unsupported dtype '" + descr.substr(0, 16) +
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
  if (payload > maxBytes) {
    std::string shape = formatShape(array.shape);
    if (!expectedShape.empty())
      return npyError(path, "shape " + shape + " does not fit the expected " +
                                expectedShape);
    return npyError(path, "shape " + shape + " (" + llvm::Twine(payload) +
                              " bytes) is more than the " +
                              llvm::Twine(maxBytes) + " bytes expected at most");
  }
  int64_t dataStart = static_cast<int64_t>(headerStart + headerLen);
  auto sizeMismatch = [&](int64_t bytes) {
    return npyError(path, "data size " + llvm::Twine(bytes) +
                              " bytes does not match the header (" +
                              llvm::Twine(payload) + " bytes expected)");
  };
  // A regular file's size is known: check it before allocating.
  if (S_ISREG(st.st_mode) && st.st_size - dataStart != payload)
    return sizeMismatch(st.st_size - dataStart);
  std::vector<char> raw(static_cast<size_t>(payload));
  got = readFully(fd, raw.data(), payload);
  if (got < 0)
    return readError();
  char extra;
  int64_t more = got == payload ? readFully(fd, &extra, 1) : 0;
  if (more < 0)
    return readError();
  if (got != payload)
    return sizeMismatch(got);
  if (more != 0)
    return npyError(path, "data continues past the " + llvm::Twine(payload) +
                              " bytes the header announces");
  if (fromF64) {
    array.data.resize(count * 4);
    float *dst = array.as<float>();
    for (int64_t i = 0; i < count; ++i) {
      double v;
      std::memcpy(&v, raw.data() + 8 * i, 8);
      dst[i] = static_cast<float>(v);
    }
  } else {
    array.data = std::move(raw);
  }
  return array;
}

llvm::Expected<std::string> attn::npyBytes(const NpyArray &array) {
  const char *descr = descrOf(array.dtype);
  if (!descr)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::Twine("cannot write dtype ") +
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
  std::string bytes = "\x93NUMPY";
  bytes += char(1);
  bytes += char(0);
  bytes += char(header.size() & 0xff);
  bytes += char((header.size() >> 8) & 0xff);
  bytes += header;
  bytes.append(array.data.data(), array.data.size());
  return bytes;
}

//===----------------------------------------------------------------------===//
// OutputFile
//===----------------------------------------------------------------------===//

llvm::Expected<OutputFile> OutputFile::open(const std::string &path) {
  OutputFile file;
  file.path_ = path;
  struct stat st;
  if (path.empty())
    return npyError(path, "cannot write: empty path");
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    struct stat target;
    if (S_ISDIR(st.st_mode) ||
        (::stat(path.c_str(), &target) == 0 && S_ISDIR(target.st_mode)))
      return npyError(path, "cannot write: Is a directory");
    // A device, FIFO, socket or symlink: written in place at the end.
    if (::access(path.c_str(), W_OK) != 0)
      return npyError(path,
                      llvm::Twine("cannot write: ") + std::strerror(errno));
    return std::move(file);
  }
  llvm::SmallString<256> tmp;
  if (auto ec = llvm::sys::fs::createUniqueFile(path + ".tmp-%%%%%%",
                                                file.fd_, tmp))
    return npyError(path, "cannot create: " + ec.message());
  file.temp_ = tmp.str().str();
  return std::move(file);
}

OutputFile::OutputFile(OutputFile &&other)
    : path_(std::move(other.path_)), temp_(std::move(other.temp_)),
      fd_(other.fd_), staged_(other.staged_) {
  other.temp_.clear();
  other.fd_ = -1;
}

OutputFile::~OutputFile() {
  if (fd_ >= 0)
    ::close(fd_);
  if (!temp_.empty())
    llvm::sys::fs::remove(temp_);
}

llvm::Error OutputFile::write(llvm::StringRef bytes) {
  if (auto err = stage(bytes))
    return err;
  return commit();
}

llvm::Error OutputFile::commit() {
  if (inPlace() || staged_)
    return llvm::Error::success();
  if (auto ec = llvm::sys::fs::rename(temp_, path_))
    return npyError(path_, "cannot write: " + ec.message());
  temp_.clear();
  staged_ = true;
  return llvm::Error::success();
}

llvm::Error OutputFile::stage(llvm::StringRef bytes) {
  auto fail = [&](const llvm::Twine &msg) { return npyError(path_, msg); };
  bool inPlace = this->inPlace();
  if (staged_)
    return fail("already written");
  if (inPlace && fd_ < 0) {
    // Without blocking: a FIFO nobody reads would hang the open. A reader
    // that is just starting gets a second (100 tries, 10 ms apart).
    for (int attempt = 0;; ++attempt) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NONBLOCK);
      if (fd_ >= 0 || errno != ENXIO || attempt == 100)
        break;
      ::usleep(10000);
    }
    if (fd_ < 0 && errno == ENXIO)
      return fail("cannot write: it is a FIFO that no process reads");
    if (fd_ < 0)
      return fail(llvm::Twine("cannot write: ") + std::strerror(errno));
    int flags = ::fcntl(fd_, F_GETFL);
    if (flags >= 0)
      (void)::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
  }
  if (fd_ < 0)
    return fail("already written");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + done,
                        std::min<size_t>(bytes.size() - done, size_t(1) << 30));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return fail(llvm::Twine("write failed: ") + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0)
    return fail(llvm::Twine("write failed: ") + std::strerror(errno));
  if (inPlace)
    staged_ = true;
  return llvm::Error::success();
}

llvm::Error attn::writeOutputs(
    llvm::ArrayRef<std::pair<OutputFile *, llvm::StringRef>> outputs) {
  for (bool inPlace : {false, true})
    for (auto [file, bytes] : outputs)
      if (file->inPlace() == inPlace)
        if (auto err = file->stage(bytes))
          return err;
  for (auto [file, bytes] : outputs)
    if (auto err = file->commit())
      return err;
  return llvm::Error::success();
}

llvm::Error attn::writeNpy(const std::string &path, const NpyArray &array) {
  llvm::Expected<std::string> bytes = npyBytes(array);
  if (!bytes)
    return npyError(path, llvm::toString(bytes.takeError()));
  return writeOutputFile(path, *bytes);
}

llvm::Error attn::writeOutputFile(const std::string &path,
                                  llvm::StringRef bytes) {
  llvm::Expected<OutputFile> file = OutputFile::open(path);
  if (!file)
    return file.takeError();
  return file->write(bytes);
}
