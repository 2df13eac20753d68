//===- DiskCache.h - on-disk cache of compiled kernels ----------*- C++ -*-===//
//
// One file per kernel in a private directory. The file name is the SHA-256
// of the cache key (compiler version, target and host CPU, spec JSON, compile
// options); the file holds a header (magic, format version, sizes, tile
// sizes, an xxh3 checksum), the key itself and the object code. Readers
// accept an entry only if every one of those checks out; anything else is a
// miss and the entry is rebuilt. Writers write a temporary file in the same
// directory and publish it with rename(2), so a reader never sees a partial
// entry and concurrent writers of one key are harmless (last one wins, both
// are complete).
//
// Security: the directory is created with mode 0700; an existing directory
// owned by another user or writable by everyone is refused. Entries are
// opened relative to a descriptor of the checked directory, with O_NOFOLLOW
// (a symlinked entry is never followed), and must be regular files owned by
// the user.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_RUNTIME_DISKCACHE_H
#define ATTN_RUNTIME_DISKCACHE_H

#include "RuntimeInternal.h"

#include <optional>
#include <string>

namespace attn {
namespace detail {

class DiskCache {
public:
  /// Opens (creating with mode 0700 when missing) the cache directory.
  /// Errors start with "cache: " and name the directory.
  static llvm::Expected<std::unique_ptr<DiskCache>>
  open(const std::string &directory);
  ~DiskCache();
  DiskCache(const DiskCache &) = delete;
  DiskCache &operator=(const DiskCache &) = delete;

  const std::string &directory() const { return dir; }

  /// The outcome of a lookup.
  enum class LoadStatus { Hit, Absent, Rejected };

  /// Reads the entry of `key`; `status` says whether it was absent or
  /// rejected on a miss.
  std::optional<CPUObject> load(const std::string &key,
                                LoadStatus &status) const;

  /// Writes the entry of `key` (temporary file + rename).
  llvm::Error store(const std::string &key, const CPUObject &object) const;

  /// The file name of the entry of `key` in the directory.
  static std::string entryName(const std::string &key);

  /// Entry format version; bump it whenever the layout changes.
  static constexpr uint32_t kFormatVersion = 2;

private:
  DiskCache(std::string dir, int dirFd) : dir(std::move(dir)), dirFd(dirFd) {}
  std::string dir;
  int dirFd;
};

/// The disk cache key of a CPU kernel: compiler version, host target
/// (triple, CPU, features), canonical spec JSON and the requested tile
/// sizes.
llvm::Expected<std::string> cpuCacheKey(const AttentionSpec &spec,
                                        const CompileOptions &options);

} // namespace detail
} // namespace attn

#endif // ATTN_RUNTIME_DISKCACHE_H
