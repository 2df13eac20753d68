//===- NestingDepth.h - bound the nesting of textual input ------*- C++ -*-===//
//
// MLIR's parser, verifier and many walks recurse once per nested region,
// attribute or type: ~20,000 nested regions overflow an 8 MiB stack
// (upstream mlir-opt 22 crashes so). Tools that parse text they did not
// write scan it first and reject nesting deeper than a bound.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_SUPPORT_NESTINGDEPTH_H
#define ATTN_SUPPORT_NESTINGDEPTH_H

#include "llvm/ADT/StringRef.h"

#include <cstddef>
#include <optional>

namespace mlir {
namespace attn {

/// Deepest nesting of `{`, `(`, `[` and `<` that attn-opt and the runtime
/// parse; real IR stays far below (a deep loop nest is ~20 levels).
constexpr unsigned kMaxTextNestingDepth = 1000;

/// The byte offset in `text` where the nesting of brackets first exceeds
/// `maxDepth`, or nullopt. String literals ("...", with backslash escapes)
/// and `//` line comments are skipped; the brackets are not matched, only
/// counted, so this is a bound, not a parse.
inline std::optional<size_t> findNestingOverflow(llvm::StringRef text,
                                                 unsigned maxDepth) {
  long depth = 0;
  for (size_t i = 0, e = text.size(); i < e; ++i) {
    char c = text[i];
    if (c == '"') {
      for (++i; i < e && text[i] != '"'; ++i)
        if (text[i] == '\\')
          ++i;
    } else if (c == '/' && i + 1 < e && text[i + 1] == '/') {
      while (i < e && text[i] != '\n')
        ++i;
    } else if (c == '{' || c == '(' || c == '[' || c == '<') {
      if (++depth > static_cast<long>(maxDepth))
        return i;
    } else if (c == '}' || c == ')' || c == ']' || c == '>') {
      if (depth > 0)
        --depth;
    }
  }
  return std::nullopt;
}

} // namespace attn
} // namespace mlir

#endif // ATTN_SUPPORT_NESTINGDEPTH_H
