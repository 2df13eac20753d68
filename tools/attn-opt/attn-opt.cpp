//===- attn-opt.cpp - mlir-opt with the attn dialect ----------------------===//
//
// Every upstream dialect, extension and pass, plus the attn dialect, its
// passes and the attn-cpu-pipeline / attn-cuda-pipeline pipelines.
//
//===----------------------------------------------------------------------===//

#include "attn/InitAttn.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::attn::registerAllAttnPassesAndPipelines();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates gpu.modules to LLVM IR.
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::attn::registerAttnDialect(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "attn-mlir optimizer driver\n", registry));
}
