//===- FuzzSpec.cpp - libFuzzer target: the JSON spec parser --------------===//
//
// Any text: AttentionSpec::fromJSON returns a spec or an error, never
// crashes; an accepted spec validates, and its canonical JSON parses back
// to the same spec.
//
//===----------------------------------------------------------------------===//

#include "attn/Runtime/Spec.h"

#include <cstdint>
#include <cstdio>
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
    std::fprintf(stderr, "fuzz-spec: fromJSON accepted a spec that validate "
                         "rejects: %s\n",
                 llvm::toString(std::move(err)).c_str());
    std::abort();
  }
  std::string canonical = spec->toJSON();
  llvm::Expected<attn::AttentionSpec> again =
      attn::AttentionSpec::fromJSON(canonical);
  if (!again) {
    std::fprintf(stderr, "fuzz-spec: the canonical form %s does not parse: %s\n",
                 canonical.c_str(), llvm::toString(again.takeError()).c_str());
    std::abort();
  }
  if (!(*again == *spec)) {
    std::fprintf(stderr, "fuzz-spec: the canonical form %s parses to another "
                         "spec (%s)\n",
                 canonical.c_str(), again->toJSON().c_str());
    std::abort();
  }
  return 0;
}
