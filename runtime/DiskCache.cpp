//===- DiskCache.cpp - on-disk cache of compiled kernels ------------------===//

#include "DiskCache.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/xxhash.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace attn;
using namespace attn::detail;

namespace {

llvm::Error cacheError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "cache: " + msg);
}

std::string octalMode(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

/// The fixed-size start of an entry (little-endian host layout; entries are
/// host-specific anyway: the key names the host CPU).
struct EntryHeader {
  char magic[8];
  uint32_t formatVersion;
  uint32_t headerSize;
  uint64_t keySize;
  uint64_t objectSize;
  int64_t tileSizes[4];
  int64_t kvSplits;
  /// xxh3-64 of the whole entry with this field zero.
  uint64_t checksum;
};
static_assert(sizeof(EntryHeader) == 80, "entry header layout");

constexpr char kMagic[8] = {'A', 'T', 'T', 'N', 'K', 'R', 'N', 'L'};
/// Entries larger than this are rejected without reading them.
constexpr uint64_t kMaxEntryBytes = uint64_t(1) << 30;

uint64_t checksumOf(std::string &entry) {
  EntryHeader header;
  std::memcpy(&header, entry.data(), sizeof(header));
  uint64_t saved = header.checksum;
  header.checksum = 0;
  std::memcpy(entry.data(), &header, sizeof(header));
  uint64_t sum = llvm::xxh3_64bits(llvm::arrayRefFromStringRef(entry));
  header.checksum = saved;
  std::memcpy(entry.data(), &header, sizeof(header));
  return sum;
}

bool writeAll(int fd, const char *data, size_t size) {
  while (size) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool readAll(int fd, char *data, size_t size) {
  while (size) {
    ssize_t n = ::read(fd, data, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    if (n == 0)
      return false; // shorter than fstat said
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

} // namespace

std::string DiskCache::entryName(const std::string &key) {
  std::array<uint8_t, 32> digest =
      llvm::SHA256::hash(llvm::arrayRefFromStringRef(key));
  return llvm::toHex(digest, /*LowerCase=*/true) + ".kernel";
}

llvm::Expected<std::unique_ptr<DiskCache>>
DiskCache::open(const std::string &directory) {
  if (directory.empty())
    return cacheError("the cache directory name is empty");
  // Missing components are created private (0700); umask can only remove
  // bits from that.
  if (std::error_code ec = llvm::sys::fs::create_directories(
          directory, /*IgnoreExisting=*/true, llvm::sys::fs::owner_all))
    return cacheError("cannot create directory '" + directory +
                      "': " + ec.message());
  int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return cacheError("cannot open directory '" + directory +
                      "': " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
    ::close(fd);
    return cacheError("'" + directory + "' is not a directory");
  }
  if (st.st_uid != ::geteuid()) {
    ::close(fd);
    return cacheError("directory '" + directory + "' is owned by uid " +
                      llvm::Twine(st.st_uid) + ", not by this user (uid " +
                      llvm::Twine(::geteuid()) + "): refusing to use it");
  }
  if (st.st_mode & S_IWOTH) {
    ::close(fd);
    return cacheError("directory '" + directory + "' is world-writable (mode " +
                      octalMode(st.st_mode) + "): refusing to use it");
  }
  // Another member of the group could plant an entry (object code this
  // process would run): refused as a world-writable directory is.
  if (st.st_mode & S_IWGRP) {
    ::close(fd);
    return cacheError("directory '" + directory + "' is writable by its group "
                      "(mode " + octalMode(st.st_mode) +
                      "): refusing to use it (chmod g-w)");
  }
  return std::unique_ptr<DiskCache>(new DiskCache(directory, fd));
}

DiskCache::~DiskCache() { ::close(dirFd); }

std::optional<CPUObject> DiskCache::load(const std::string &key,
                                         LoadStatus &status) const {
  std::string name = entryName(key);
  // O_NOFOLLOW: a symlink planted as an entry fails with ELOOP; O_NONBLOCK:
  // a FIFO planted as one does not block the open.
  int fd = ::openat(dirFd, name.c_str(),
                    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    status = errno == ENOENT ? LoadStatus::Absent : LoadStatus::Rejected;
    return std::nullopt;
  }
  status = LoadStatus::Rejected;
  struct stat st;
  std::string entry;
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
            st.st_uid == ::geteuid() && !(st.st_mode & (S_IWOTH | S_IWGRP)) &&
            static_cast<uint64_t>(st.st_size) >= sizeof(EntryHeader) &&
            static_cast<uint64_t>(st.st_size) <= kMaxEntryBytes;
  if (ok) {
    entry.resize(static_cast<size_t>(st.st_size));
    ok = readAll(fd, entry.data(), entry.size());
  }
  ::close(fd);
  if (!ok)
    return std::nullopt;

  EntryHeader header;
  std::memcpy(&header, entry.data(), sizeof(header));
  if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0 ||
      header.formatVersion != kFormatVersion ||
      header.headerSize != sizeof(EntryHeader) ||
      header.keySize != key.size() || header.objectSize == 0 ||
      header.objectSize > kMaxEntryBytes ||
      sizeof(EntryHeader) + header.keySize + header.objectSize !=
          entry.size() ||
      entry.compare(sizeof(EntryHeader), key.size(), key) != 0 ||
      checksumOf(entry) != header.checksum)
    return std::nullopt;
  for (int64_t t : header.tileSizes)
    if (t <= 0)
      return std::nullopt;
  if (header.kvSplits < 1)
    return std::nullopt;

  CPUObject object;
  object.bytes = entry.substr(sizeof(EntryHeader) + key.size());
  object.tileSizes = mlir::attn::AttentionTileSizes{
      header.tileSizes[0], header.tileSizes[1], header.tileSizes[2],
      header.tileSizes[3]};
  object.kvSplits = header.kvSplits;
  status = LoadStatus::Hit;
  return object;
}

llvm::Error DiskCache::store(const std::string &key,
                             const CPUObject &object) const {
  EntryHeader header{};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.formatVersion = kFormatVersion;
  header.headerSize = sizeof(EntryHeader);
  header.keySize = key.size();
  header.objectSize = object.bytes.size();
  // Entries are flash-path kernels (the unfused reference is never stored).
  if (!object.tileSizes)
    return llvm::createStringError("cache: an object without tile sizes "
                                   "(the unfused reference) is not stored");
  std::array<int64_t, 4> tiles = object.tileSizes->toArray();
  std::copy(tiles.begin(), tiles.end(), header.tileSizes);
  header.kvSplits = object.kvSplits;
  std::string entry(reinterpret_cast<const char *>(&header), sizeof(header));
  entry += key;
  entry += object.bytes;
  header.checksum = checksumOf(entry);
  std::memcpy(entry.data(), &header, sizeof(header));

  std::string name = entryName(key);
  static std::atomic<uint64_t> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    tmp = ".tmp." + name + "." + std::to_string(::getpid()) + "." +
          std::to_string(counter.fetch_add(1));
    fd = ::openat(dirFd, tmp.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd < 0)
    return cacheError("cannot create a temporary file in '" + dir +
                      "': " + std::strerror(errno));
  bool ok = writeAll(fd, entry.data(), entry.size());
  int writeErrno = errno;
  ok = (::close(fd) == 0) && ok;
  // No fsync: after a crash the entry may be empty or partial, which a
  // reader rejects (size and checksum) and rebuilds.
  if (ok && ::renameat(dirFd, tmp.c_str(), dirFd, name.c_str()) == 0)
    return llvm::Error::success();
  int err = ok ? errno : writeErrno;
  ::unlinkat(dirFd, tmp.c_str(), 0);
  return cacheError("cannot write entry '" + name + "' in '" + dir +
                    "': " + std::strerror(err));
}

llvm::Expected<std::string> detail::cpuCacheKey(const AttentionSpec &spec,
                                                const CompileOptions &options) {
  llvm::Expected<mlir::attn::CPUTargetInfo> level =
      resolveCPUTarget(options.cpuTarget);
  if (!level)
    return level.takeError();
  llvm::Expected<std::string> host = cpuTargetDescription(*level);
  if (!host)
    return host.takeError();
  std::string key = "attn-mlir kernel v1\ncompiler: ";
  key += compilerVersion();
  key += "\ntarget: cpu ";
  key += *host;
  key += "\nspec: ";
  key += spec.toJSON();
  key += "\ntile_sizes:";
  if (options.tileSizes)
    for (int64_t t : options.tileSizes->toArray())
      key += " " + std::to_string(t);
  else
    key += " compiler";
  key += "\nkv_splits: " + std::to_string(options.kvSplits);
  key += "\n";
  return key;
}
