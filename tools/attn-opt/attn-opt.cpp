//===- attn-opt.cpp - mlir-opt with the attn dialect ----------------------===//
//
// Every upstream dialect, extension and pass, plus the attn dialect, its
// passes and the attn-cpu-pipeline / attn-cuda-pipeline pipelines.
//
// Hardened against hostile input where mlir-opt is not: the input is
// scanned first and nesting deeper than kMaxTextNestingDepth is an error,
// and parsing and the pass pipeline run on a thread with a 256 MiB stack
// (MLIR recurses once per nested region).
//
//===----------------------------------------------------------------------===//

#include "attn/InitAttn.h"
#include "attn/Support/NestingDepth.h"

#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/thread.h"

namespace {
constexpr unsigned kStackBytes = 256u << 20;

int run(int argc, char **argv, llvm::StringRef inputFilename,
        llvm::StringRef outputFilename, mlir::DialectRegistry &registry) {
  mlir::MlirOptMainConfig config =
      mlir::MlirOptMainConfig::createFromCLOptions();
  // Listings read no input: upstream's driver prints them.
  if (config.shouldShowDialects())
    return mlir::asMainReturnCode(mlir::MlirOptMain(
        argc, argv, inputFilename, outputFilename, registry));
  std::string errorMessage;
  std::unique_ptr<llvm::MemoryBuffer> input =
      mlir::openInputFile(inputFilename, &errorMessage);
  if (!input) {
    llvm::errs() << "attn-opt: error: " << errorMessage << "\n";
    return 1;
  }
  if (std::optional<size_t> at = mlir::attn::findNestingOverflow(
          input->getBuffer(), mlir::attn::kMaxTextNestingDepth)) {
    llvm::SourceMgr sourceMgr;
    llvm::StringRef name = input->getBufferIdentifier();
    const char *loc = input->getBufferStart() + *at;
    sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
    auto [line, column] =
        sourceMgr.getLineAndColumn(llvm::SMLoc::getFromPointer(loc));
    llvm::errs() << name << ":" << line << ":" << column
                 << ": error: input nested deeper than "
                 << mlir::attn::kMaxTextNestingDepth << " levels\n";
    return 1;
  }
  std::unique_ptr<llvm::ToolOutputFile> output =
      mlir::openOutputFile(outputFilename, &errorMessage);
  if (!output) {
    llvm::errs() << "attn-opt: error: " << errorMessage << "\n";
    return 1;
  }
  if (mlir::failed(
          mlir::MlirOptMain(output->os(), std::move(input), registry, config)))
    return 1;
  output->keep();
  return 0;
}
} // namespace

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::attn::registerAllAttnPassesAndPipelines();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates gpu.modules to LLVM IR.
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::attn::registerAttnDialect(registry);
  std::pair<std::string, std::string> files = mlir::registerAndParseCLIOptions(
      argc, argv, "attn-mlir optimizer driver\n", registry);
  const std::string &inputFilename = files.first;
  const std::string &outputFilename = files.second;
  int code = 1;
  llvm::thread worker(std::optional<unsigned>(kStackBytes), [&] {
    code = run(argc, argv, inputFilename, outputFilename, registry);
  });
  worker.join();
  return code;
}
