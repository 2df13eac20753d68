//===- KernelEmulationTest.cpp - run the CUDA kernels' IR on the CPU ------===//
//
// Without a GPU, the generated kernels are executed by an interpreter of the
// gpu.launch that attn-cuda-lower-attention produces, and compared with the
// f64 reference. The interpreter runs all threads of a block in lockstep, as
// SIMD lanes with an activity mask:
//
// * nvgpu.mma.sync / nvvm.mma.sync, nvgpu.ldmatrix and gpu.shuffle act on a
//   whole warp with the PTX ISA semantics (the fragment tables transcribed
//   in FragmentLayoutTest.cpp, repeated here);
// * nvgpu.device_async_copy is deferred: a copy only lands in shared memory
//   when nvgpu.device_async_wait / nvvm.cp.async.wait.group retires its
//   group, so reading a stage before waiting for it reads the previous
//   contents (shared memory starts as NaN);
// * floats are rounded to their type after every operation; exp2 / log2 are
//   exact (the PTX approximations' 2^-22 relative error is not modelled).
//
// What this checks: the kernel's index arithmetic, masking, block skipping,
// the software pipeline's ordering of copies and waits, the online softmax,
// the fragment plumbing and the epilogue. What it cannot check: hardware
// scheduling races (lockstep execution satisfies every barrier), and the
// NVVM / PTX lowering of the ops (ptxas and FileCheck tests cover the PTX).
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include "attn/Pipelines/Pipelines.h"
#include "attn/Runtime/Float16.h"
#include "attn/Transforms/Passes.h"
#include "runtime/KernelBuilder.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/AffineExpr.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include "gtest/gtest.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace ::attn;
using namespace ::attn::test;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

//===----------------------------------------------------------------------===//
// PTX ISA fragment tables (see FragmentLayoutTest.cpp)
//===----------------------------------------------------------------------===//

std::pair<int, int> ptxA(int lane, int i) {
  int g = lane >> 2, t = lane % 4;
  return {(i < 2 || (i >= 4 && i < 6)) ? g : g + 8,
          t * 2 + (i & 1) + (i >= 4 ? 8 : 0)};
}
std::pair<int, int> ptxB(int lane, int i) {
  return {(lane % 4) * 2 + (i & 1) + (i >= 2 ? 8 : 0), lane >> 2};
}
std::pair<int, int> ptxC(int lane, int i) {
  return {i < 2 ? lane >> 2 : (lane >> 2) + 8, (lane % 4) * 2 + (i & 1)};
}

//===----------------------------------------------------------------------===//
// Values and memory
//===----------------------------------------------------------------------===//

double roundTo(Type t, double x) {
  if (t.isF16())
    return f16ToFloat(floatToF16(static_cast<float>(x)));
  if (t.isBF16())
    return bf16ToFloat(floatToBF16(static_cast<float>(x)));
  if (t.isF32())
    return static_cast<float>(x);
  return x;
}

Type elementTypeOf(Type t) {
  if (auto v = dyn_cast<VectorType>(t))
    return v.getElementType();
  return t;
}

struct Memory {
  std::vector<double> data; // global: by element; shared: by byte address
};

/// A memref value: uniform over the threads.
struct MemRefVal {
  Memory *mem = nullptr;
  int64_t offset = 0; // in units of `scale`
  int64_t scale = 1;  // 1 (element-addressed) or the element size (bytes)
  SmallVector<int64_t> shape, strides;
  Type elt;
  int64_t address(ArrayRef<int64_t> idx) const {
    int64_t linear = 0;
    for (size_t i = 0; i < idx.size(); ++i)
      linear += idx[i] * strides[i];
    return offset + linear * scale;
  }
};

/// One SSA value for every thread of the block: the elements of its
/// scalar / vector / struct value per thread, or a memref.
struct Val {
  std::vector<std::vector<double>> lanes;
  int memref = -1;
};

using Mask = std::vector<char>;

struct PendingCopy {
  int dstMemRef, srcMemRef;
  int64_t dst, src, n, srcN;
};

int64_t elementCount(Type t) {
  if (auto v = dyn_cast<VectorType>(t))
    return v.getNumElements();
  if (auto s = dyn_cast<LLVM::LLVMStructType>(t))
    return s.getBody().size();
  return 1;
}

//===----------------------------------------------------------------------===//
// The interpreter
//===----------------------------------------------------------------------===//

class Emulator {
public:
  Emulator(gpu::LaunchOp launch, int threads) : launch(launch), n(threads) {
    pending.resize(n);
    current.resize(n);
  }

  /// Binds a memref defined outside the launch to host memory.
  void bind(Value memref, Memory *mem, ArrayRef<int64_t> shape,
            ArrayRef<int64_t> strides) {
    MemRefVal m;
    m.mem = mem;
    m.shape.assign(shape.begin(), shape.end());
    m.strides.assign(strides.begin(), strides.end());
    m.elt = cast<MemRefType>(memref.getType()).getElementType();
    memrefs.push_back(m);
    bindings[memref] = memrefs.size() - 1;
  }

  void runBlock(std::array<int64_t, 3> ids, std::array<int64_t, 3> grid,
                int64_t sharedBytes) {
    env.clear();
    shared.data.assign(sharedBytes, kNaN);
    for (auto &p : pending)
      p.clear();
    for (auto &c : current)
      c.clear();
    Block &body = launch.getBody().front();
    gpu::KernelDim3 b = launch.getBlockIds(), t = launch.getThreadIds(),
                    g = launch.getGridSize(), s = launch.getBlockSize();
    auto uniform = [&](Value v, double x) { env[v] = splat(x); };
    uniform(b.x, ids[0]);
    uniform(b.y, ids[1]);
    uniform(b.z, ids[2]);
    uniform(g.x, grid[0]);
    uniform(g.y, grid[1]);
    uniform(g.z, grid[2]);
    uniform(s.x, n);
    uniform(s.y, 1);
    uniform(s.z, 1);
    Val tid;
    tid.lanes.resize(n);
    for (int i = 0; i < n; ++i)
      tid.lanes[i] = {double(i)};
    env[t.x] = tid;
    uniform(t.y, 0);
    uniform(t.z, 0);
    run(body, Mask(n, 1));
  }

  std::string failure;

private:
  Val splat(double x, int64_t count = 1) {
    Val v;
    v.lanes.assign(n, std::vector<double>(count, x));
    return v;
  }
  const Val &get(Value v) {
    auto it = env.find(v);
    if (it != env.end())
      return it->second;
    auto b = bindings.find(v);
    if (b != bindings.end()) {
      Val m;
      m.memref = b->second;
      env[v] = m;
      return env[v];
    }
    fail("value used before definition");
    static Val empty;
    return empty;
  }
  double uniformOf(Value v, const Mask &m) {
    const Val &x = get(v);
    double r = kNaN;
    for (int i = 0; i < n; ++i) {
      if (!m[i])
        continue;
      if (std::isnan(r))
        r = x.lanes[i][0];
      else if (r != x.lanes[i][0])
        fail("a loop bound differs between threads");
    }
    return r;
  }
  void fail(const std::string &why) {
    if (failure.empty())
      failure = why;
  }

  SmallVector<Val> run(Block &block, const Mask &m);
  void exec(Operation &op, const Mask &m);
  void elementwise(Operation &op, const Mask &m);
  void collective(Operation &op, const Mask &m);
  void finishGroups(int thread, size_t keep);

  gpu::LaunchOp launch;
  int n;
  DenseMap<Value, Val> env;
  DenseMap<Value, int> bindings;
  std::vector<MemRefVal> memrefs;
  Memory shared;
  std::vector<std::vector<std::vector<PendingCopy>>> pending; // committed
  std::vector<std::vector<PendingCopy>> current;              // uncommitted
};

SmallVector<Val> Emulator::run(Block &block, const Mask &m) {
  for (Operation &op : block) {
    if (!failure.empty())
      return {};
    if (auto yield = dyn_cast<scf::YieldOp>(op)) {
      SmallVector<Val> out;
      for (Value v : yield.getOperands())
        out.push_back(get(v));
      return out;
    }
    if (isa<gpu::TerminatorOp>(op))
      return {};
    exec(op, m);
  }
  return {};
}

int64_t evalAffine(AffineExpr e, ArrayRef<int64_t> dims,
                   ArrayRef<int64_t> syms) {
  if (auto c = dyn_cast<AffineConstantExpr>(e))
    return c.getValue();
  if (auto d = dyn_cast<AffineDimExpr>(e))
    return dims[d.getPosition()];
  if (auto s = dyn_cast<AffineSymbolExpr>(e))
    return syms[s.getPosition()];
  auto bin = cast<AffineBinaryOpExpr>(e);
  int64_t l = evalAffine(bin.getLHS(), dims, syms);
  int64_t r = evalAffine(bin.getRHS(), dims, syms);
  switch (e.getKind()) {
  case AffineExprKind::Add:
    return l + r;
  case AffineExprKind::Mul:
    return l * r;
  case AffineExprKind::Mod:
    return ((l % r) + r) % r;
  case AffineExprKind::FloorDiv:
    return l >= 0 ? l / r : -((-l + r - 1) / r);
  case AffineExprKind::CeilDiv:
    return l >= 0 ? (l + r - 1) / r : -((-l) / r);
  default:
    return 0;
  }
}

void Emulator::finishGroups(int t, size_t keep) {
  while (pending[t].size() > keep) {
    for (PendingCopy &c : pending[t].front()) {
      MemRefVal &dst = memrefs[c.dstMemRef];
      MemRefVal &src = memrefs[c.srcMemRef];
      for (int64_t e = 0; e < c.n; ++e)
        dst.mem->data[c.dst + e * dst.scale] =
            e < c.srcN ? src.mem->data[c.src + e * src.scale] : 0.0;
    }
    pending[t].erase(pending[t].begin());
  }
}

void Emulator::exec(Operation &op, const Mask &m) {
  // Structured control flow.
  if (auto forOp = dyn_cast<scf::ForOp>(op)) {
    int64_t lb = uniformOf(forOp.getLowerBound(), m);
    int64_t ub = uniformOf(forOp.getUpperBound(), m);
    int64_t step = uniformOf(forOp.getStep(), m);
    SmallVector<Val> iter;
    for (Value v : forOp.getInitArgs())
      iter.push_back(get(v));
    for (int64_t i = lb; i < ub && failure.empty(); i += step) {
      env[forOp.getInductionVar()] = splat(i);
      for (auto [arg, v] : llvm::zip(forOp.getRegionIterArgs(), iter))
        env[arg] = v;
      iter = run(*forOp.getBody(), m);
    }
    for (auto [res, v] : llvm::zip(forOp.getResults(), iter))
      env[res] = v;
    return;
  }
  if (auto ifOp = dyn_cast<scf::IfOp>(op)) {
    const Val &cond = get(ifOp.getCondition());
    Mask thenMask(n), elseMask(n);
    bool anyThen = false, anyElse = false;
    for (int i = 0; i < n; ++i) {
      bool c = cond.lanes[i][0] != 0;
      thenMask[i] = m[i] && c;
      elseMask[i] = m[i] && !c;
      anyThen |= thenMask[i];
      anyElse |= elseMask[i];
    }
    SmallVector<Val> thenVals, elseVals;
    if (anyThen)
      thenVals = run(*ifOp.thenBlock(), thenMask);
    if (anyElse && ifOp.elseBlock())
      elseVals = run(*ifOp.elseBlock(), elseMask);
    for (auto [idx, res] : llvm::enumerate(ifOp.getResults())) {
      Val v;
      v.lanes.assign(n, std::vector<double>(elementCount(res.getType()), kNaN));
      for (int i = 0; i < n; ++i) {
        if (thenMask[i])
          v.lanes[i] = thenVals[idx].lanes[i];
        else if (elseMask[i])
          v.lanes[i] = elseVals[idx].lanes[i];
      }
      env[res] = v;
    }
    return;
  }
  if (isa<gpu::BarrierOp, NVVM::SyncWarpOp>(op))
    return; // lockstep execution
  if (isa<gpu::DynamicSharedMemoryOp>(op)) {
    MemRefVal base;
    base.mem = &shared;
    base.scale = 1;
    base.shape = {int64_t(shared.data.size())};
    base.strides = {1};
    base.elt = IntegerType::get(op.getContext(), 8);
    memrefs.push_back(base);
    Val v;
    v.memref = memrefs.size() - 1;
    env[op.getResult(0)] = v;
    return;
  }
  if (auto view = dyn_cast<memref::ViewOp>(op)) {
    const Val &src = get(view.getSource());
    MemRefVal base = memrefs[src.memref];
    auto type = view.getType();
    MemRefVal v;
    v.mem = base.mem;
    v.elt = type.getElementType();
    v.scale = v.elt.getIntOrFloatBitWidth() / 8;
    v.offset = base.offset + int64_t(uniformOf(view.getByteShift(), m));
    v.shape.assign(type.getShape().begin(), type.getShape().end());
    int64_t stride = 1;
    v.strides.assign(v.shape.size(), 0);
    for (int i = v.shape.size() - 1; i >= 0; --i) {
      v.strides[i] = stride;
      stride *= v.shape[i];
    }
    memrefs.push_back(v);
    Val r;
    r.memref = memrefs.size() - 1;
    env[view.getResult()] = r;
    return;
  }
  if (auto dim = dyn_cast<memref::DimOp>(op)) {
    const MemRefVal &mr = memrefs[get(dim.getSource()).memref];
    env[dim.getResult()] = splat(mr.shape[*dim.getConstantIndex()]);
    return;
  }
  if (isa<nvgpu::LdMatrixOp, nvgpu::MmaSyncOp, NVVM::MmaOp, gpu::ShuffleOp>(
          op)) {
    collective(op, m);
    return;
  }
  if (auto copy = dyn_cast<nvgpu::DeviceAsyncCopyOp>(op)) {
    int dst = get(copy.getDst()).memref, src = get(copy.getSrc()).memref;
    int64_t count = copy.getDstElements().getZExtValue();
    for (int i = 0; i < n; ++i) {
      if (!m[i])
        continue;
      SmallVector<int64_t> di, si;
      for (Value v : copy.getDstIndices())
        di.push_back(get(v).lanes[i][0]);
      for (Value v : copy.getSrcIndices())
        si.push_back(get(v).lanes[i][0]);
      int64_t srcN = copy.getSrcElements()
                         ? int64_t(get(copy.getSrcElements()).lanes[i][0])
                         : count;
      current[i].push_back({dst, src, memrefs[dst].address(di),
                            srcN ? memrefs[src].address(si) : 0, count, srcN});
    }
    Val token = splat(0);
    env[copy.getResult()] = token;
    return;
  }
  if (auto group = dyn_cast<nvgpu::DeviceAsyncCreateGroupOp>(op)) {
    for (int i = 0; i < n; ++i)
      if (m[i]) {
        pending[i].push_back(current[i]);
        current[i].clear();
      }
    env[group.getResult()] = splat(0);
    return;
  }
  if (auto wait = dyn_cast<nvgpu::DeviceAsyncWaitOp>(op)) {
    size_t keep = wait.getNumGroups() ? *wait.getNumGroups() : 0;
    for (int i = 0; i < n; ++i)
      if (m[i])
        finishGroups(i, keep);
    return;
  }
  if (auto wait = dyn_cast<NVVM::CpAsyncWaitGroupOp>(op)) {
    for (int i = 0; i < n; ++i)
      if (m[i])
        finishGroups(i, wait.getN());
    return;
  }
  // Memory.
  auto indices = [&](ValueRange idx, int i) {
    SmallVector<int64_t> out;
    for (Value v : idx)
      out.push_back(get(v).lanes[i][0]);
    return out;
  };
  if (auto load = dyn_cast<vector::LoadOp>(op)) {
    const MemRefVal &mr = memrefs[get(load.getBase()).memref];
    int64_t count = load.getVectorType().getNumElements();
    Val v;
    v.lanes.assign(n, std::vector<double>(count, kNaN));
    for (int i = 0; i < n; ++i) {
      if (!m[i])
        continue;
      int64_t a = mr.address(indices(load.getIndices(), i));
      for (int64_t e = 0; e < count; ++e)
        v.lanes[i][e] = mr.mem->data[a + e * mr.scale];
    }
    env[load.getResult()] = v;
    return;
  }
  if (auto load = dyn_cast<memref::LoadOp>(op)) {
    const MemRefVal &mr = memrefs[get(load.getMemRef()).memref];
    Val v = splat(kNaN);
    for (int i = 0; i < n; ++i)
      if (m[i])
        v.lanes[i][0] = mr.mem->data[mr.address(indices(load.getIndices(), i))];
    env[load.getResult()] = v;
    return;
  }
  if (auto store = dyn_cast<vector::StoreOp>(op)) {
    const MemRefVal &mr = memrefs[get(store.getBase()).memref];
    const Val &x = get(store.getValueToStore());
    for (int i = 0; i < n; ++i) {
      if (!m[i])
        continue;
      int64_t a = mr.address(indices(store.getIndices(), i));
      for (size_t e = 0; e < x.lanes[i].size(); ++e)
        mr.mem->data[a + e * mr.scale] = roundTo(mr.elt, x.lanes[i][e]);
    }
    return;
  }
  if (auto store = dyn_cast<memref::StoreOp>(op)) {
    const MemRefVal &mr = memrefs[get(store.getMemRef()).memref];
    const Val &x = get(store.getValueToStore());
    for (int i = 0; i < n; ++i)
      if (m[i])
        mr.mem->data[mr.address(indices(store.getIndices(), i))] =
            roundTo(mr.elt, x.lanes[i][0]);
    return;
  }
  elementwise(op, m);
}

void Emulator::collective(Operation &op, const Mask &m) {
  for (int w = 0; w < n / 32; ++w) {
    int active = 0;
    for (int l = 0; l < 32; ++l)
      active += m[w * 32 + l] != 0;
    if (active == 0)
      continue;
    if (active != 32)
      return fail("a warp-collective op runs in divergent code");
  }
  if (auto shuffle = dyn_cast<gpu::ShuffleOp>(op)) {
    if (shuffle.getMode() != gpu::ShuffleMode::XOR)
      return fail("unsupported shuffle mode");
    const Val &x = get(shuffle.getValue());
    int offset = get(shuffle.getOffset()).lanes[0][0];
    Val r = splat(kNaN);
    for (int i = 0; i < n; ++i)
      if (m[i])
        r.lanes[i][0] = x.lanes[(i & ~31) | ((i % 32) ^ offset)][0];
    env[shuffle.getShuffleResult()] = r;
    env[shuffle.getValid()] = splat(1);
    return;
  }
  if (auto ld = dyn_cast<nvgpu::LdMatrixOp>(op)) {
    const MemRefVal &mr = memrefs[get(ld.getSrcMemref()).memref];
    int tiles = ld.getNumTiles();
    Val r;
    r.lanes.assign(n, std::vector<double>(2 * tiles, kNaN));
    for (int w = 0; w < n / 32; ++w) {
      if (!m[w * 32])
        continue;
      // Row addresses from lanes 8 t .. 8 t + 7.
      std::vector<int64_t> row(32);
      for (int l = 0; l < 8 * tiles; ++l) {
        SmallVector<int64_t> idx;
        for (Value v : ld.getIndices())
          idx.push_back(get(v).lanes[w * 32 + l][0]);
        row[l] = mr.address(idx);
      }
      for (int l = 0; l < 32; ++l)
        for (int t = 0; t < tiles; ++t)
          for (int j = 0; j < 2; ++j) {
            int rr = l / 4, cc = 2 * (l % 4) + j;
            if (ld.getTranspose())
              std::swap(rr, cc);
            r.lanes[w * 32 + l][2 * t + j] =
                mr.mem->data[row[8 * t + rr] + cc * mr.scale];
          }
    }
    env[ld.getRes()] = r;
    return;
  }
  // mma.sync m16n8k16: A 8 elements, B 4, C 4 per lane.
  auto mma = [&](const std::vector<std::vector<double>> &a,
                 const std::vector<std::vector<double>> &b,
                 const std::vector<std::vector<double>> &c, int w) {
    double A[16][16], B[16][8];
    for (int l = 0; l < 32; ++l) {
      for (int i = 0; i < 8; ++i) {
        auto [r, cc] = ptxA(l, i);
        A[r][cc] = a[w * 32 + l][i];
      }
      for (int i = 0; i < 4; ++i) {
        auto [k, nn] = ptxB(l, i);
        B[k][nn] = b[w * 32 + l][i];
      }
    }
    std::vector<std::vector<double>> d(32, std::vector<double>(4));
    for (int l = 0; l < 32; ++l)
      for (int i = 0; i < 4; ++i) {
        auto [r, cc] = ptxC(l, i);
        double sum = c[w * 32 + l][i];
        for (int k = 0; k < 16; ++k)
          sum += A[r][k] * B[k][cc];
        d[l][i] = static_cast<float>(sum);
      }
    return d;
  };
  std::vector<std::vector<double>> a(n), b(n), c(n);
  Value result;
  if (auto op16 = dyn_cast<nvgpu::MmaSyncOp>(op)) {
    a = get(op16.getMatrixA()).lanes;
    b = get(op16.getMatrixB()).lanes;
    c = get(op16.getMatrixC()).lanes;
    result = op16.getRes();
  } else {
    auto opbf = cast<NVVM::MmaOp>(op);
    for (int i = 0; i < n; ++i) {
      for (Value v : opbf.getOperandA())
        for (double x : get(v).lanes[i])
          a[i].push_back(x);
      for (Value v : opbf.getOperandB())
        for (double x : get(v).lanes[i])
          b[i].push_back(x);
      for (Value v : opbf.getOperandC())
        c[i].push_back(get(v).lanes[i][0]);
    }
    result = opbf.getRes();
  }
  Val r;
  r.lanes.assign(n, std::vector<double>(4, kNaN));
  for (int w = 0; w < n / 32; ++w) {
    if (!m[w * 32])
      continue;
    auto d = mma(a, b, c, w);
    for (int l = 0; l < 32; ++l)
      r.lanes[w * 32 + l] = d[l];
  }
  env[result] = r;
}

void Emulator::elementwise(Operation &op, const Mask &m) {
  auto operand = [&](unsigned i) -> const Val & {
    return get(op.getOperand(i));
  };
  auto produce = [&](unsigned res, auto fn) {
    Val v;
    v.lanes.resize(n);
    for (int i = 0; i < n; ++i)
      v.lanes[i] = fn(i);
    env[op.getResult(res)] = v;
  };
  Type resultElt =
      op.getNumResults() ? elementTypeOf(op.getResult(0).getType()) : Type();
  // Unary / binary elementwise on all elements of each lane.
  auto unary = [&](auto f) {
    const Val &x = operand(0);
    produce(0, [&](int i) {
      std::vector<double> out(x.lanes[i].size());
      for (size_t e = 0; e < out.size(); ++e)
        out[e] = roundTo(resultElt, f(x.lanes[i][e]));
      return out;
    });
  };
  auto binary = [&](auto f) {
    const Val &x = operand(0), &y = operand(1);
    produce(0, [&](int i) {
      std::vector<double> out(x.lanes[i].size());
      for (size_t e = 0; e < out.size(); ++e)
        out[e] = roundTo(resultElt, f(x.lanes[i][e], y.lanes[i][e]));
      return out;
    });
  };

  if (auto cst = dyn_cast<arith::ConstantOp>(op)) {
    Attribute attr = cst.getValue();
    std::vector<double> elems;
    if (auto i = dyn_cast<IntegerAttr>(attr))
      elems = {double(i.getValue().getSExtValue())};
    else if (auto f = dyn_cast<FloatAttr>(attr))
      elems = {f.getValueAsDouble()};
    else if (auto d = dyn_cast<DenseElementsAttr>(attr)) {
      if (d.getElementType().isIntOrIndex())
        for (APInt x : d.getValues<APInt>())
          elems.push_back(double(x.getSExtValue()));
      else
        for (APFloat x : d.getValues<APFloat>())
          elems.push_back(x.convertToDouble());
    } else
      return fail("unsupported constant");
    produce(0, [&](int) { return elems; });
    return;
  }
  if (auto apply = dyn_cast<affine::AffineApplyOp>(op)) {
    AffineMap map = apply.getAffineMap();
    produce(0, [&](int i) {
      SmallVector<int64_t> vals;
      for (Value v : apply.getMapOperands())
        vals.push_back(get(v).lanes[i][0]);
      ArrayRef<int64_t> all(vals);
      return std::vector<double>{
          double(evalAffine(map.getResult(0), all.take_front(map.getNumDims()),
                            all.drop_front(map.getNumDims())))};
    });
    return;
  }
  if (auto amin = dyn_cast<affine::AffineMinOp>(op)) {
    AffineMap map = amin.getAffineMap();
    produce(0, [&](int i) {
      SmallVector<int64_t> vals;
      for (Value v : amin.getMapOperands())
        vals.push_back(get(v).lanes[i][0]);
      ArrayRef<int64_t> all(vals);
      int64_t best = std::numeric_limits<int64_t>::max();
      for (AffineExpr e : map.getResults())
        best = std::min(best, evalAffine(e, all.take_front(map.getNumDims()),
                                         all.drop_front(map.getNumDims())));
      return std::vector<double>{double(best)};
    });
    return;
  }
  using P = arith::CmpIPredicate;
  if (auto cmp = dyn_cast<arith::CmpIOp>(op)) {
    P pred = cmp.getPredicate();
    binary([&](double a, double b) -> double {
      switch (pred) {
      case P::eq:
        return a == b;
      case P::ne:
        return a != b;
      case P::slt:
      case P::ult:
        return a < b;
      case P::sle:
      case P::ule:
        return a <= b;
      case P::sgt:
      case P::ugt:
        return a > b;
      case P::sge:
      case P::uge:
        return a >= b;
      }
      return 0;
    });
    return;
  }
  if (auto cmp = dyn_cast<arith::CmpFOp>(op)) {
    using F = arith::CmpFPredicate;
    F pred = cmp.getPredicate();
    if (pred != F::OEQ && pred != F::OLT && pred != F::OGT)
      return fail("unsupported cmpf predicate");
    binary([&](double a, double b) -> double {
      return pred == F::OEQ ? a == b : pred == F::OLT ? a < b : a > b;
    });
    return;
  }
  if (auto sel = dyn_cast<arith::SelectOp>(op)) {
    const Val &c = operand(0), &x = operand(1), &y = operand(2);
    produce(0, [&](int i) {
      std::vector<double> out(x.lanes[i].size());
      for (size_t e = 0; e < out.size(); ++e) {
        double ce = c.lanes[i].size() == 1 ? c.lanes[i][0] : c.lanes[i][e];
        out[e] = ce != 0 ? x.lanes[i][e] : y.lanes[i][e];
      }
      return out;
    });
    return;
  }
  if (isa<arith::AddIOp>(op))
    return binary([](double a, double b) { return a + b; });
  if (isa<arith::SubIOp>(op))
    return binary([](double a, double b) { return a - b; });
  if (isa<arith::MulIOp>(op))
    return binary([](double a, double b) { return a * b; });
  if (isa<arith::DivUIOp, arith::DivSIOp>(op))
    return binary([](double a, double b) { return std::trunc(a / b); });
  if (isa<arith::RemUIOp, arith::RemSIOp>(op))
    return binary([](double a, double b) { return std::fmod(a, b); });
  if (isa<arith::FloorDivSIOp>(op))
    return binary([](double a, double b) { return std::floor(a / b); });
  if (isa<arith::CeilDivSIOp>(op))
    return binary([](double a, double b) { return std::ceil(a / b); });
  if (isa<arith::MinSIOp>(op))
    return binary([](double a, double b) { return std::min(a, b); });
  if (isa<arith::MaxSIOp>(op))
    return binary([](double a, double b) { return std::max(a, b); });
  if (isa<arith::AndIOp>(op))
    return binary([](double a, double b) -> double { return a && b; });
  if (isa<arith::OrIOp>(op))
    return binary([](double a, double b) -> double { return a || b; });
  if (isa<arith::XOrIOp>(op))
    return binary(
        [](double a, double b) -> double { return (a != 0) != (b != 0); });
  if (isa<arith::IndexCastOp, arith::ExtUIOp, arith::ExtSIOp, arith::TruncIOp,
          arith::IndexCastUIOp>(op))
    return unary([](double a) { return a; });
  if (isa<arith::AddFOp>(op))
    return binary([](double a, double b) { return a + b; });
  if (isa<arith::SubFOp>(op))
    return binary([](double a, double b) { return a - b; });
  if (isa<arith::MulFOp>(op))
    return binary([](double a, double b) { return a * b; });
  if (isa<arith::DivFOp>(op))
    return binary([](double a, double b) { return a / b; });
  if (isa<arith::MaximumFOp>(op))
    return binary([](double a, double b) {
      return std::isnan(a) || std::isnan(b) ? kNaN : std::max(a, b);
    });
  if (isa<arith::TruncFOp, arith::ExtFOp>(op))
    return unary([](double a) { return a; });
  if (isa<vector::FMAOp, LLVM::FMAOp>(op)) {
    const Val &x = operand(0), &y = operand(1), &z = operand(2);
    produce(0, [&](int i) {
      std::vector<double> out(x.lanes[i].size());
      for (size_t e = 0; e < out.size(); ++e)
        out[e] = static_cast<float>(std::fma(
            float(x.lanes[i][e]), float(y.lanes[i][e]), float(z.lanes[i][e])));
      return out;
    });
    return;
  }
  if (auto call = dyn_cast<LLVM::CallIntrinsicOp>(op)) {
    StringRef name = call.getIntrin();
    if (name.starts_with("llvm.nvvm.ex2"))
      return unary([](double a) { return std::exp2(float(a)); });
    if (name.starts_with("llvm.nvvm.lg2"))
      return unary([](double a) { return std::log2(float(a)); });
    return fail("unsupported intrinsic " + name.str());
  }
  if (isa<LLVM::BitcastOp>(op)) // pairs of bf16 travel as their elements
    return produce(0, [&](int i) { return operand(0).lanes[i]; });
  if (auto ev = dyn_cast<LLVM::ExtractValueOp>(op)) {
    int64_t pos = ev.getPosition()[0];
    return produce(0, [&](int i) {
      return std::vector<double>{operand(0).lanes[i][pos]};
    });
  }
  // Vectors.
  if (auto ex = dyn_cast<vector::ExtractOp>(op)) {
    auto src = cast<VectorType>(ex.getSource().getType());
    int64_t inner = 1;
    ArrayRef<int64_t> pos = ex.getStaticPosition();
    for (int64_t d = pos.size(); d < src.getRank(); ++d)
      inner *= src.getDimSize(d);
    int64_t linear = 0;
    for (size_t d = 0; d < pos.size(); ++d)
      linear = linear * src.getDimSize(d) + pos[d];
    return produce(0, [&](int i) {
      auto &l = operand(0).lanes[i];
      return std::vector<double>(l.begin() + linear * inner,
                                 l.begin() + (linear + 1) * inner);
    });
  }
  if (auto ins = dyn_cast<vector::InsertOp>(op)) {
    auto dst = cast<VectorType>(ins.getDest().getType());
    int64_t inner = 1;
    ArrayRef<int64_t> pos = ins.getStaticPosition();
    for (int64_t d = pos.size(); d < dst.getRank(); ++d)
      inner *= dst.getDimSize(d);
    int64_t linear = 0;
    for (size_t d = 0; d < pos.size(); ++d)
      linear = linear * dst.getDimSize(d) + pos[d];
    return produce(0, [&](int i) {
      std::vector<double> out = get(ins.getDest()).lanes[i];
      const auto &v = get(ins.getValueToStore()).lanes[i];
      for (int64_t e = 0; e < inner; ++e)
        out[linear * inner + e] = v[e];
      return out;
    });
  }
  if (auto fe = dyn_cast<vector::FromElementsOp>(op)) {
    return produce(0, [&](int i) {
      std::vector<double> out;
      for (Value v : fe.getElements())
        out.push_back(get(v).lanes[i][0]);
      return out;
    });
  }
  if (auto te = dyn_cast<vector::ToElementsOp>(op)) {
    for (unsigned r = 0; r < te.getNumResults(); ++r)
      produce(r, [&](int i) {
        return std::vector<double>{operand(0).lanes[i][r]};
      });
    return;
  }
  if (auto bc = dyn_cast<vector::BroadcastOp>(op)) {
    int64_t count = bc.getResultVectorType().getNumElements();
    return produce(0, [&](int i) {
      return std::vector<double>(count, operand(0).lanes[i][0]);
    });
  }
  fail("unsupported op " + op.getName().getStringRef().str());
}

//===----------------------------------------------------------------------===//
// Driving a spec through the lowering and the emulator
//===----------------------------------------------------------------------===//

struct Case {
  AttentionSpec spec;
  std::array<int64_t, 4> tiles;
  int64_t batch, qLen, kvLen;
};

/// Emulates the kernel of `c` on a random problem; returns the problem with
/// the kernel's output (and LSE) in p.out / p.lse.
::testing::AssertionResult emulate(const Case &c, Problem &p) {
  MLIRContext context(kernelDialectRegistry(),
                      MLIRContext::Threading::DISABLED);
  OwningOpRef<ModuleOp> module =
      buildKernelModule(context, c.spec, /*workgroupRange=*/false);
  PassManager pm(&context);
  mlir::attn::TileAttentionPassOptions tile;
  tile.tileSizes = {c.tiles[0], c.tiles[1], c.tiles[2], c.tiles[3]};
  pm.addPass(mlir::attn::createTileAttentionPass(tile));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  mlir::attn::CUDALowerAttentionPassOptions lower;
  lower.chip = "sm_80";
  pm.addNestedPass<func::FuncOp>(
      mlir::attn::createCUDALowerAttentionPass(lower));
  if (failed(pm.run(*module)))
    return ::testing::AssertionFailure() << "the lowering failed";
  gpu::LaunchOp launch;
  module->walk([&](gpu::LaunchOp op) { launch = op; });
  if (!launch)
    return ::testing::AssertionFailure() << "no gpu.launch";
  auto constant = [](Value v) { return *getConstantIntValue(v); };
  int threads = constant(launch.getBlockSizeX());
  std::array<int64_t, 3> grid = {constant(launch.getGridSizeX()),
                                 constant(launch.getGridSizeY()),
                                 constant(launch.getGridSizeZ())};
  int64_t sharedBytes = constant(launch.getDynamicSharedMemorySize());

  // Host memory for the kernel's memrefs (the function's arguments).
  auto func = module->lookupSymbol<func::FuncOp>(kKernelEntry);
  std::vector<KernelOperand> operands = kernelOperands(c.spec);
  std::vector<Memory> memories(operands.size());
  AttentionArgs args = p.args();
  Emulator emu(launch, threads);
  for (auto [i, op] : llvm::enumerate(operands)) {
    const TensorRef *t = nullptr;
    std::vector<double> init;
    switch (op) {
    case KernelOperand::Query:
      t = &args.query, init = p.in.query;
      break;
    case KernelOperand::Key:
      t = &args.key, init = p.in.key;
      break;
    case KernelOperand::Value:
      t = &args.value, init = p.in.value;
      break;
    case KernelOperand::KvLens:
      t = &args.kvLens;
      init.assign(p.in.kvLens.begin(), p.in.kvLens.end());
      break;
    case KernelOperand::Output:
      t = &args.output;
      init.assign(p.out.size(), kNaN);
      break;
    case KernelOperand::Lse:
      t = &args.lse;
      init.assign(p.lse.size(), kNaN);
      break;
    case KernelOperand::Mask:
      return ::testing::AssertionFailure() << "tensor masks";
    case KernelOperand::Capture: // CUDA refuses score_mod / mask_mod
      return ::testing::AssertionFailure() << "captures";
    }
    memories[i].data = init;
    emu.bind(func.getArgument(i), &memories[i],
             ArrayRef<int64_t>(t->shape.data(), t->rank),
             ArrayRef<int64_t>(t->strides.data(), t->rank));
  }
  for (int64_t z = 0; z < grid[2]; ++z)
    for (int64_t y = 0; y < grid[1]; ++y)
      for (int64_t x = 0; x < grid[0]; ++x) {
        emu.runBlock({x, y, z}, grid, sharedBytes);
        if (!emu.failure.empty())
          return ::testing::AssertionFailure() << emu.failure;
      }
  // Results back into the problem's typed buffers.
  for (auto [i, op] : llvm::enumerate(operands)) {
    Buffer *buffer = op == KernelOperand::Output ? &p.out
                     : op == KernelOperand::Lse  ? &p.lse
                                                 : nullptr;
    if (!buffer)
      continue;
    std::vector<double> values = memories[i].data;
    buffer->store(buffer->dtype, values);
  }
  return ::testing::AssertionSuccess();
}

AttentionSpec staticSpec(DType dtype, int64_t hq, int64_t hkv, int64_t d,
                         int64_t batch, int64_t qLen, int64_t kvLen,
                         std::vector<MaskSpec> masks, bool lse) {
  AttentionSpec s;
  s.batch = batch;
  s.qHeads = hq;
  s.kvHeads = hkv;
  s.qLen = qLen;
  s.kvLen = kvLen;
  s.headDim = s.vHeadDim = d;
  s.dtype = dtype;
  s.masks = std::move(masks);
  s.returnLse = lse;
  return s;
}

struct EmulationCase {
  const char *name;
  Case c;
};

class KernelEmulation : public ::testing::TestWithParam<EmulationCase> {};

TEST_P(KernelEmulation, MatchesReference) {
  const Case &c = GetParam().c;
  Problem p(c.spec, c.batch, c.qLen, c.kvLen);
  p.randomize(5);
  ASSERT_TRUE(emulate(c, p));
  reference::Outputs ref = p.reference();
  if (c.spec.dtype == DType::F32) {
    EXPECT_TRUE(matchesReference(p, ref));
  } else {
    // f16 / bf16: P is rounded to the input type before P V, as in
    // FlashAttention-2; within twice the same-precision reference's error
    // (docs/design.md section 7), plus the output's own rounding.
    std::vector<double> same = reference::samePrecisionAttention(c.spec, p.in);
    double bound = 2 * maxAbsError(same, ref.output) +
                   (c.spec.dtype == DType::BF16 ? 1.6e-2 : 2e-3);
    double err = maxAbsError(p.output(), ref.output);
    EXPECT_LE(err, bound) << "same-precision error "
                          << maxAbsError(same, ref.output);
  }
  if (c.spec.returnLse) {
    std::vector<double> lse = p.lseValues();
    double worst = 0;
    for (size_t i = 0; i < lse.size(); ++i) {
      if (lse[i] == ref.lse[i])
        continue; // both -inf for rows without keys
      worst = std::max(worst, std::isnan(lse[i] - ref.lse[i])
                                  ? INFINITY
                                  : std::fabs(lse[i] - ref.lse[i]));
    }
    EXPECT_LE(worst, c.spec.dtype == DType::F32 ? 1e-5 : 1e-2);
  }
}

std::vector<EmulationCase> emulationCases() {
  std::vector<EmulationCase> cases;
  auto add = [&](const char *name, AttentionSpec s,
                 std::array<int64_t, 4> tiles) {
    cases.push_back({name, {s, tiles, *s.batch, *s.qLen, *s.kvLen}});
  };
  // Tensor cores, causal, ragged query and key tails, 2 query blocks.
  add("f16_causal_ragged",
      staticSpec(DType::F16, 2, 2, 32, 1, 80, 80, {causalMask(false)}, true),
      {1, 1, 64, 64});
  // bf16, GQA, key padding, bottom-right causal with rows that see nothing.
  add("bf16_gqa_padding_bottom_right",
      staticSpec(DType::BF16, 4, 2, 16, 2, 50, 30,
                 {causalMask(true), keyPaddingMask()}, true),
      {1, 1, 32, 16});
  // f16, head_dim 48 (ldmatrix.x2 for the last k-step) and 48-key blocks
  // (ldmatrix.x2.trans), no mask, several key blocks in the pipeline.
  add("f16_d48_x2", staticSpec(DType::F16, 1, 1, 48, 1, 40, 150, {}, false),
      {1, 1, 48, 48});
  // f32 on CUDA cores with a sliding window.
  add("f32_window",
      staticSpec(DType::F32, 2, 1, 32, 1, 70, 90, {windowMask(20, 3, false)},
                 true),
      {1, 1, 32, 16});
  // f32, causal, tail block, a single key block per query block.
  add("f32_causal_tail",
      staticSpec(DType::F32, 1, 1, 64, 1, 33, 33, {causalMask(false)}, false),
      {1, 1, 32, 32});
  // The runtime's configuration for long sequences: 128 x 64 tiles, 8 warps,
  // several warps skipping diagonal blocks.
  add("f16_causal_128x64",
      staticSpec(DType::F16, 2, 2, 64, 1, 200, 200, {causalMask(false)}, true),
      {1, 1, 128, 64});
  // head_dim 128 with key padding: 32-key blocks (the runtime's choice).
  add("bf16_d128_padding",
      staticSpec(DType::BF16, 2, 1, 128, 2, 70, 100, {keyPaddingMask()}, true),
      {1, 1, 64, 32});
  // f32 with head_dim 128 (four output chunks per thread) and the LSE.
  add("f32_d128_lse", staticSpec(DType::F32, 1, 1, 128, 1, 64, 96, {}, true),
      {1, 1, 64, 32});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(
    CUDA, KernelEmulation, ::testing::ValuesIn(emulationCases()),
    [](const ::testing::TestParamInfo<EmulationCase> &info) {
      return std::string(info.param.name);
    });

} // namespace
