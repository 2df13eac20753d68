//===- FuzzOpt.cpp - libFuzzer target: parse, verify, attn passes ---------===//
//
// Any text as MLIR: the nesting bound of attn-opt, then parse and verify
// with every dialect attn-opt registers; verified modules run the attn
// passes (tiling, online-softmax rewrite, decomposition, the unfused
// reference lowering, fusion, the kernel interface), which must transform or diagnose, never crash, and
// leave verifier-valid IR when they succeed.
//
//===----------------------------------------------------------------------===//

#include "attn/InitAttn.h"
#include "attn/Support/NestingDepth.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mlir::DialectRegistry *registry = [] {
    mlir::registerAllPasses();
    mlir::attn::registerAllAttnPassesAndPipelines();
    auto *r = new mlir::DialectRegistry();
    mlir::registerAllDialects(*r);
    mlir::registerAllExtensions(*r);
    mlir::attn::registerAttnDialect(*r);
    return r;
  }();
  // MLIR's lexer reads the byte after the buffer (it expects the NUL that
  // file buffers carry; the first libFuzzer run here read past a bare
  // "cf.cond_br"): parse a NUL-terminated copy, as attn-opt's files are.
  std::string owned(reinterpret_cast<const char *>(data), size);
  llvm::StringRef text(owned);
  if (mlir::attn::findNestingOverflow(text, mlir::attn::kMaxTextNestingDepth))
    return 0;
  mlir::MLIRContext context(*registry, mlir::MLIRContext::Threading::DISABLED);
  context.allowUnregisteredDialects(false);
  mlir::ScopedDiagnosticHandler quiet(&context, [](mlir::Diagnostic &) {
    return mlir::success();
  });
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(text, &context);
  if (!module)
    return 0;
  for (const char *pipeline :
       {"attn-tile-attention{tile-sizes=1,1,16,16},canonicalize",
        "attn-convert-to-online-attention", "attn-decompose-online-attention",
        "convert-attn-to-linalg", "attn-fuse-attention",
        "attn-memref-kernel-interface"}) {
    mlir::OwningOpRef<mlir::ModuleOp> copy = module->clone();
    mlir::PassManager pm(&context);
    pm.enableVerifier(true);
    if (mlir::failed(mlir::parsePassPipeline(pipeline, pm)))
      std::abort();
    if (mlir::succeeded(pm.run(*copy)) && mlir::failed(mlir::verify(*copy)))
      std::abort(); // a pass succeeded but left invalid IR
  }
  return 0;
}
