//===- DiskCacheTest.cpp - the on-disk kernel cache -----------------------===//
//
// Hits across Runtime instances and across processes without compiling;
// corrupt, truncated, foreign-key and symlinked entries are misses that are
// rebuilt; private directory creation; refused directories; the
// environment variable; concurrent writers.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <functional>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace attn;
using namespace attn::test;

namespace {

AttentionSpec cacheSpec(int64_t qLen = 9) {
  AttentionSpec s;
  s.batch = 2;
  s.qHeads = 4;
  s.kvHeads = 2;
  s.qLen = qLen;
  s.kvLen = 21;
  s.headDim = 32;
  s.vHeadDim = 32;
  s.masks = {causalMask(/*bottomRight=*/true)};
  s.returnLse = true;
  return s;
}

RuntimeOptions optionsFor(const std::string &dir) {
  RuntimeOptions o;
  o.cacheDir = dir;
  o.numThreads = 2;
  return o;
}

class DiskCache : public ::testing::Test {
protected:
  void SetUp() override {
    llvm::SmallString<128> path;
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("attn-disk-cache", path));
    root = std::string(path);
    dir = root + "/kernels";
  }
  void TearDown() override {
    if (!root.empty())
      llvm::sys::fs::remove_directories(root);
  }

  /// The entries in `dir` (file names), temporary files included.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
         it.increment(ec))
      names.push_back(llvm::sys::path::filename(it->path()).str());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string onlyEntry() const {
    std::vector<std::string> names = entries();
    EXPECT_EQ(names.size(), 1u);
    return names.empty() ? "" : dir + "/" + names.front();
  }

  /// Compiles or loads `spec` with a fresh Runtime, checks the kernel
  /// numerically and returns its stats.
  RuntimeStats getWithFreshRuntime(const AttentionSpec &spec,
                                   bool *fromDisk = nullptr) {
    auto runtime = Runtime::create(optionsFor(dir));
    EXPECT_TRUE(static_cast<bool>(runtime));
    if (!runtime) {
      llvm::consumeError(runtime.takeError());
      return {};
    }
    auto kernel = (*runtime)->getKernel(spec);
    EXPECT_TRUE(static_cast<bool>(kernel)) << errorText(kernel.takeError());
    if (kernel) {
      if (fromDisk)
        *fromDisk = (*kernel)->info().fromDiskCache;
      if ((*kernel)->info().fromDiskCache)
        EXPECT_EQ((*kernel)->info().compileMs, 0.0);
      else
        EXPECT_GT((*kernel)->info().compileMs, 0.0);
      Problem p(spec, *spec.batch, *spec.qLen, *spec.kvLen);
      p.randomize(3);
      EXPECT_FALSE(static_cast<bool>((*kernel)->run(p.args())));
      EXPECT_TRUE(matchesReference(p, p.reference()));
    }
    return (*runtime)->stats();
  }

  std::string root, dir;
};

TEST_F(DiskCache, HitAcrossRuntimesWithoutCompiling) {
  bool fromDisk = true;
  RuntimeStats cold = getWithFreshRuntime(cacheSpec(), &fromDisk);
  EXPECT_FALSE(fromDisk);
  EXPECT_EQ(cold.compiles, 1u);
  EXPECT_EQ(cold.diskMisses, 1u);
  EXPECT_EQ(cold.diskWrites, 1u);
  EXPECT_EQ(cold.diskRejected, 0u);
  ASSERT_EQ(entries().size(), 1u);
  EXPECT_EQ(entries()[0].size(), 64u + 7u) << entries()[0]; // sha256.kernel

  RuntimeStats warm = getWithFreshRuntime(cacheSpec(), &fromDisk);
  EXPECT_TRUE(fromDisk);
  EXPECT_EQ(warm.compiles, 0u) << "the compiler ran on a disk cache hit";
  EXPECT_EQ(warm.diskHits, 1u);
  EXPECT_EQ(warm.diskWrites, 0u);

  // Another spec, or other tile sizes, is another entry.
  RuntimeStats other = getWithFreshRuntime(cacheSpec(/*qLen=*/10), &fromDisk);
  EXPECT_FALSE(fromDisk);
  EXPECT_EQ(other.compiles, 1u);
  auto runtime = Runtime::create(optionsFor(dir));
  ASSERT_TRUE(static_cast<bool>(runtime));
  CompileOptions tiles;
  tiles.tileSizes = mlir::attn::AttentionTileSizes{1, 1, 16, 16};
  ASSERT_EXPECTED(tiled,
                  (*runtime)->getKernel(cacheSpec(), Target::CPU, tiles));
  EXPECT_FALSE(tiled->info().fromDiskCache);
  EXPECT_EQ(tiled->info().tileSizes, tiles.tileSizes);
  EXPECT_EQ(entries().size(), 3u);
}

TEST_F(DiskCache, HitInAnotherProcess) {
  // The child compiles and stores; the parent then loads without compiling.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Runtime runtime(optionsFor(dir));
    auto kernel = runtime.getKernel(cacheSpec());
    _exit(kernel && runtime.stats().compiles == 1 &&
                  runtime.stats().diskWrites == 1
              ? 0
              : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  bool fromDisk = false;
  RuntimeStats warm = getWithFreshRuntime(cacheSpec(), &fromDisk);
  EXPECT_TRUE(fromDisk);
  EXPECT_EQ(warm.compiles, 0u);
  EXPECT_EQ(warm.diskHits, 1u);
}

// Each damage is followed by one rejected lookup that recompiles and
// rewrites the entry, and a hit after that.
TEST_F(DiskCache, CorruptAndTruncatedEntriesAreRebuilt) {
  getWithFreshRuntime(cacheSpec());
  std::string entry = onlyEntry();
  uint64_t size = 0;
  ASSERT_FALSE(llvm::sys::fs::file_size(entry, size));
  auto damages = std::vector<std::pair<const char *, std::function<void()>>>{
      {"one flipped byte in the object code",
       [&] {
         std::fstream f(entry, std::ios::in | std::ios::out | std::ios::binary);
         f.seekp(static_cast<std::streamoff>(size - 100));
         char c;
         f.read(&c, 1);
         f.seekp(static_cast<std::streamoff>(size - 100));
         c = static_cast<char>(c ^ 0x10);
         f.write(&c, 1);
       }},
      {"truncated to half",
       [&] { ASSERT_EQ(truncate(entry.c_str(), size / 2), 0); }},
      {"truncated inside the header",
       [&] { ASSERT_EQ(truncate(entry.c_str(), 20), 0); }},
      {"empty", [&] { ASSERT_EQ(truncate(entry.c_str(), 0), 0); }},
      {"a longer file",
       [&] {
         std::ofstream f(entry, std::ios::app | std::ios::binary);
         f << "trailing garbage";
       }},
  };
  for (auto &[what, damage] : damages) {
    SCOPED_TRACE(what);
    damage();
    bool fromDisk = true;
    RuntimeStats rebuilt = getWithFreshRuntime(cacheSpec(), &fromDisk);
    EXPECT_FALSE(fromDisk);
    EXPECT_EQ(rebuilt.diskRejected, 1u);
    EXPECT_EQ(rebuilt.compiles, 1u);
    EXPECT_EQ(rebuilt.diskWrites, 1u);
    RuntimeStats again = getWithFreshRuntime(cacheSpec(), &fromDisk);
    EXPECT_TRUE(fromDisk);
    EXPECT_EQ(again.diskRejected, 0u);
    EXPECT_EQ(onlyEntry(), entry);
    uint64_t newSize = 0;
    ASSERT_FALSE(llvm::sys::fs::file_size(entry, newSize));
    EXPECT_EQ(newSize, size);
  }
}

TEST_F(DiskCache, EntryOfAnotherKeyIsRejected) {
  // The entry of spec A copied under the name of spec B's entry: the key
  // stored inside does not match, so it is not loaded as B's kernel.
  getWithFreshRuntime(cacheSpec(9));
  std::string a = onlyEntry();
  getWithFreshRuntime(cacheSpec(10));
  std::vector<std::string> names = entries();
  ASSERT_EQ(names.size(), 2u);
  std::string b = dir + "/" + (dir + "/" + names[0] == a ? names[1] : names[0]);
  ASSERT_FALSE(llvm::sys::fs::copy_file(a, b));
  bool fromDisk = true;
  RuntimeStats s = getWithFreshRuntime(cacheSpec(10), &fromDisk);
  EXPECT_FALSE(fromDisk);
  EXPECT_EQ(s.diskRejected, 1u);
}

TEST_F(DiskCache, SymlinkedEntryIsNotFollowed) {
  getWithFreshRuntime(cacheSpec());
  std::string entry = onlyEntry();
  // Move the valid entry elsewhere and plant a symlink to it.
  std::string elsewhere = root + "/elsewhere.kernel";
  ASSERT_FALSE(llvm::sys::fs::rename(entry, elsewhere));
  ASSERT_EQ(symlink(elsewhere.c_str(), entry.c_str()), 0);
  bool fromDisk = true;
  RuntimeStats s = getWithFreshRuntime(cacheSpec(), &fromDisk);
  EXPECT_FALSE(fromDisk) << "followed a symlinked entry";
  EXPECT_EQ(s.diskRejected, 1u);
  EXPECT_EQ(s.diskWrites, 1u);
  // The symlink was replaced by a regular file; its target is untouched.
  struct stat st;
  ASSERT_EQ(lstat(entry.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_TRUE(llvm::sys::fs::exists(elsewhere));
}

TEST_F(DiskCache, DirectoryCreatedPrivate) {
  std::string nested = root + "/a/b/kernels";
  auto runtime = Runtime::create(optionsFor(nested));
  ASSERT_TRUE(static_cast<bool>(runtime)) << errorText(runtime.takeError());
  EXPECT_EQ((*runtime)->cacheDirectory(), nested);
  for (const std::string &d : {root + "/a", root + "/a/b", nested}) {
    struct stat st;
    ASSERT_EQ(stat(d.c_str(), &st), 0) << d;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << d;
  }
  // An existing private-enough directory (0755, ours) is accepted as is.
  ASSERT_EQ(chmod(nested.c_str(), 0755), 0);
  EXPECT_TRUE(static_cast<bool>(Runtime::create(optionsFor(nested))));
}

TEST_F(DiskCache, RefusesWorldWritableDirectory) {
  ASSERT_FALSE(llvm::sys::fs::create_directories(dir));
  ASSERT_EQ(chmod(dir.c_str(), 01777), 0); // like /tmp, sticky or not
  auto runtime = Runtime::create(optionsFor(dir));
  ASSERT_FALSE(static_cast<bool>(runtime));
  EXPECT_EQ(errorText(runtime.takeError()),
            "cache: directory '" + dir +
                "' is world-writable (mode 1777): refusing to use it");
  // The constructor defers the refusal to getKernel.
  Runtime deferred(optionsFor(dir));
  auto kernel = deferred.getKernel(cacheSpec());
  ASSERT_FALSE(static_cast<bool>(kernel));
  EXPECT_NE(errorText(kernel.takeError()).find("world-writable"),
            std::string::npos);
  EXPECT_TRUE(entries().empty());
}

/// A group-writable directory (0770) was accepted: another member of the
/// group could plant object code. Refused as a world-writable one is.
TEST_F(DiskCache, RefusesGroupWritableDirectory) {
  ASSERT_FALSE(llvm::sys::fs::create_directories(dir));
  ASSERT_EQ(chmod(dir.c_str(), 0770), 0);
  auto runtime = Runtime::create(optionsFor(dir));
  ASSERT_FALSE(static_cast<bool>(runtime));
  EXPECT_EQ(errorText(runtime.takeError()),
            "cache: directory '" + dir +
                "' is writable by its group (mode 0770): refusing to use it "
                "(chmod g-w)");
}

TEST_F(DiskCache, RefusesDirectoryOfAnotherUser) {
  std::string foreign = "/";
  if (geteuid() == 0) {
    foreign = dir;
    ASSERT_FALSE(llvm::sys::fs::create_directories(foreign));
    ASSERT_EQ(chmod(foreign.c_str(), 0700), 0);
    ASSERT_EQ(chown(foreign.c_str(), 65534, 65534), 0);
  }
  auto runtime = Runtime::create(optionsFor(foreign));
  ASSERT_FALSE(static_cast<bool>(runtime));
  std::string msg = errorText(runtime.takeError());
  EXPECT_NE(msg.find("cache: directory '" + foreign + "' is owned by uid "),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("not by this user"), std::string::npos) << msg;
}

TEST_F(DiskCache, RefusesUncreatableDirectory) {
  ASSERT_FALSE(llvm::sys::fs::create_directories(root));
  std::ofstream(root + "/file") << "x";
  auto runtime = Runtime::create(optionsFor(root + "/file/kernels"));
  ASSERT_FALSE(static_cast<bool>(runtime));
  EXPECT_NE(
      errorText(runtime.takeError()).find("cache: cannot create directory"),
      std::string::npos);
}

TEST_F(DiskCache, EnvironmentVariableAndOptOut) {
  ASSERT_EQ(setenv(kCacheDirEnvVar, dir.c_str(), 1), 0);
  {
    Runtime fromEnv;
    EXPECT_EQ(fromEnv.cacheDirectory(), dir);
    RuntimeOptions off;
    off.diskCache = false;
    Runtime disabled(off);
    EXPECT_EQ(disabled.cacheDirectory(), "");
    Runtime explicitDir(optionsFor(root + "/other"));
    EXPECT_EQ(explicitDir.cacheDirectory(), root + "/other");
  }
  // Set to "": no disk cache, not even the per-user default.
  ASSERT_EQ(setenv(kCacheDirEnvVar, "", 1), 0);
  Runtime none;
  EXPECT_EQ(none.cacheDirectory(), "");
  ASSERT_EXPECTED(kernel, none.getKernel(cacheSpec()));
  EXPECT_FALSE(kernel->info().fromDiskCache);
  EXPECT_EQ(none.stats().diskMisses, 0u);
  ASSERT_EQ(unsetenv(kCacheDirEnvVar), 0);
}

/// Sets (or with nullptr unsets) an environment variable for a scope.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const char *name, const char *value) : name(name) {
    if (const char *v = std::getenv(name))
      old = v;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old)
      setenv(name.c_str(), old->c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};

TEST_F(DiskCache, PerUserDefaultDirectory) {
  ScopedEnv noDir(kCacheDirEnvVar, nullptr);
  {
    // $XDG_CACHE_HOME/attn-mlir, created private.
    ScopedEnv xdg("XDG_CACHE_HOME", (root + "/xdg").c_str());
    EXPECT_EQ(defaultCacheDirectory(), root + "/xdg/attn-mlir");
    Runtime runtime;
    EXPECT_EQ(runtime.cacheDirectory(), root + "/xdg/attn-mlir");
    struct stat st;
    ASSERT_EQ(stat((root + "/xdg/attn-mlir").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
  }
  {
    // A relative XDG_CACHE_HOME is ignored (the XDG spec): $HOME/.cache.
    ScopedEnv xdg("XDG_CACHE_HOME", "relative/cache");
    ScopedEnv home("HOME", (root + "/home").c_str());
    EXPECT_EQ(defaultCacheDirectory(), root + "/home/.cache/attn-mlir");
  }
  {
    // An unusable default is no disk cache, not an error.
    ASSERT_FALSE(llvm::sys::fs::create_directories(root));
    std::ofstream(root + "/file") << "x";
    ScopedEnv xdg("XDG_CACHE_HOME", (root + "/file").c_str());
    Runtime runtime;
    EXPECT_EQ(runtime.cacheDirectory(), "");
    ASSERT_EXPECTED(kernel, runtime.getKernel(cacheSpec()));
    EXPECT_FALSE(kernel->info().fromDiskCache);
  }
}

TEST_F(DiskCache, ConcurrentWritersLeaveOneCompleteEntry) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      Runtime runtime(optionsFor(dir)); // separate runtimes: separate compiles
      if (runtime.getKernel(cacheSpec()))
        ++ok;
    });
  for (std::thread &t : threads)
    t.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(entries().size(), 1u) << "temporary files left behind";
  bool fromDisk = false;
  getWithFreshRuntime(cacheSpec(), &fromDisk);
  EXPECT_TRUE(fromDisk);
}

TEST(CompilerVersion, NamesVersionRevisionAndLLVM) {
  std::string v = compilerVersion();
  EXPECT_EQ(v.rfind("attn-mlir ", 0), 0u) << v;
  EXPECT_NE(v.find(" LLVM "), std::string::npos) << v;
}

} // namespace
