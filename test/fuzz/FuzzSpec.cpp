//===- FuzzSpec.cpp - libFuzzer target: the JSON spec parser --------------===//
//
// Any text: AttentionSpec::fromJSON returns a spec or an error, never
// crashes; an accepted spec validates, and its canonical JSON parses back
// to the same spec.
//
//===----------------------------------------------------------------------===//

#include "attn/Runtime/Spec.h"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  llvm::Expected<attn::AttentionSpec> spec = attn::AttentionSpec::fromJSON(text);
  if (!spec) {
    llvm::consumeError(spec.takeError());
    return 0;
  }
  if (llvm::Error err = spec->validate()) {
    llvm::consumeError(std::move(err));
    std::abort(); // fromJSON accepted what validate rejects
  }
  llvm::Expected<attn::AttentionSpec> again =
      attn::AttentionSpec::fromJSON(spec->toJSON());
  if (!again || !(*again == *spec))
    std::abort(); // the canonical form does not round-trip
  return 0;
}
