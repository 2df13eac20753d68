# -*- Python -*-
import os
import sys

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "ATTN"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.attn_obj_root, "test")
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "data",
                   "compare-printed-memrefs.py",
                   "unittests", "python", "fuzz"]

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%attn_src_root", config.attn_src_root))
config.substitutions.append(("%testdata", os.path.join(config.attn_src_root, "test", "data")))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
# No per-user disk cache in tests (see test/CMakeLists.txt).
config.environment["ATTN_MLIR_CACHE_DIR"] = ""
llvm_config.use_default_substitutions()
# FileCheck, not, count and split-file come from LLVM's tools directory.
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.attn_tools_dir, append_path=True)

tool_dirs = [config.attn_tools_dir, config.llvm_tools_dir]
tools = ["attn-opt", "attn-run"]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# CUDA: `ptxas` when the toolkit's assembler was found at configure time;
# `cuda-device` only when the CUDA driver loads and reports a device (set
# ATTN_CUDA_DEVICE=0 to treat a machine with a device as one without).
config.substitutions.append(("%python", sys.executable))
# MLIR's runner utilities (printMemrefF32) for mlir-runner tests.
config.substitutions.append(("%mlir_runner_utils", os.path.join(
    os.path.dirname(config.llvm_tools_dir), "lib", "libmlir_runner_utils.so")))
# ... and its C utilities (printF32, printNewline: what vector.print calls).
config.substitutions.append(("%mlir_c_runner_utils", os.path.join(
    os.path.dirname(config.llvm_tools_dir), "lib", "libmlir_c_runner_utils.so")))
if config.ptxas and os.path.exists(config.ptxas):
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", config.ptxas))
    config.environment["ATTN_PTXAS"] = config.ptxas


def cuda_device_present():
    if os.environ.get("ATTN_CUDA_DEVICE") == "0":
        return False
    try:
        import ctypes

        lib = ctypes.CDLL("libcuda.so.1")
        if lib.cuInit(0) != 0:
            return False
        count = ctypes.c_int(0)
        return lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    except (OSError, AttributeError):
        return False


if cuda_device_present():
    config.available_features.add("cuda-device")
