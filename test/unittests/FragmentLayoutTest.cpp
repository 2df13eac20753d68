//===- FragmentLayoutTest.cpp - CUDA fragment layouts on a CPU -----------===//
//
// The CUDA kernels build their addresses from the affine maps of
// attn/Transforms/CUDA/FragmentLayout.h. Without a GPU, these tests check
// the maps against an independent transcription of the PTX ISA tables
// (mma.m16n8k16 fragments for .f16/.bf16, ldmatrix), and emulate the warp's
// S = Q K^T and O = P V exactly as TensorCoreTile.cpp composes them
// (ldmatrix.x4 for two k-steps, the S accumulators re-packed as P's A
// fragments), comparing with a plain matrix product.
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/CUDA/FragmentLayout.h"

#include "mlir/IR/AffineExpr.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <vector>

using namespace mlir;
using namespace mlir::attn::cuda;

namespace {

//===----------------------------------------------------------------------===//
// The PTX ISA, transcribed (section "Matrix Fragments for mma.m16n8k16 with
// floating point type" and "Warp-level matrix load instruction: ldmatrix").
//===----------------------------------------------------------------------===//

struct RC {
  int64_t row, col;
  bool operator==(const RC &o) const { return row == o.row && col == o.col; }
};

int64_t groupID(int64_t lane) { return lane >> 2; }
int64_t threadInGroup(int64_t lane) { return lane % 4; }

/// Element a_i (i = 0..7) of the A fragment.
RC ptxA(int64_t lane, int64_t i) {
  int64_t row =
      (i < 2 || (i >= 4 && i < 6)) ? groupID(lane) : groupID(lane) + 8;
  int64_t col = threadInGroup(lane) * 2 + (i & 1) + (i >= 4 ? 8 : 0);
  return {row, col};
}
/// Element b_i (i = 0..3) of the B fragment: (k, n).
RC ptxB(int64_t lane, int64_t i) {
  int64_t row = threadInGroup(lane) * 2 + (i & 1) + (i >= 2 ? 8 : 0);
  return {row, groupID(lane)};
}
/// Element c_i (i = 0..3) of the f32 accumulator.
RC ptxC(int64_t lane, int64_t i) {
  int64_t row = i < 2 ? groupID(lane) : groupID(lane) + 8;
  return {row, threadInGroup(lane) * 2 + (i & 1)};
}
/// ldmatrix .m8n8 .b16: element j (0, 1) of the register for matrix m that
/// `lane` receives, as (row, col) of that 8 x 8 matrix; the rows' addresses
/// come from lanes 8 m .. 8 m + 7.
RC ptxLdmatrix(int64_t lane, int64_t j, bool trans) {
  RC rc{lane / 4, 2 * (lane % 4) + j};
  return trans ? RC{rc.col, rc.row} : rc;
}

//===----------------------------------------------------------------------===//
// Evaluating the library's maps
//===----------------------------------------------------------------------===//

int64_t eval(AffineMap map, unsigned result, int64_t lane) {
  AffineExpr e = map.getResult(result).replaceDimsAndSymbols(
      {getAffineConstantExpr(lane, map.getContext())}, {});
  return cast<AffineConstantExpr>(e).getValue();
}
RC eval2(AffineMap map, int64_t lane) {
  return {eval(map, 0, lane), eval(map, 1, lane)};
}

class FragmentLayout : public ::testing::Test {
protected:
  MLIRContext ctx;
};

TEST_F(FragmentLayout, MmaFragmentsMatchPtx) {
  for (int64_t lane = 0; lane < 32; ++lane) {
    for (int64_t reg = 0; reg < 4; ++reg)
      for (int64_t e = 0; e < 2; ++e)
        EXPECT_EQ(eval2(getMmaAMap(&ctx, reg, e), lane),
                  ptxA(lane, 2 * reg + e))
            << "A lane " << lane << " reg " << reg << " e " << e;
    for (int64_t reg = 0; reg < 2; ++reg)
      for (int64_t e = 0; e < 2; ++e) {
        EXPECT_EQ(eval2(getMmaBMap(&ctx, reg, e), lane),
                  ptxB(lane, 2 * reg + e))
            << "B lane " << lane;
        EXPECT_EQ(eval2(getMmaAccumulatorMap(&ctx, reg, e), lane),
                  ptxC(lane, 2 * reg + e))
            << "C lane " << lane;
      }
  }
}

TEST_F(FragmentLayout, FragmentsCoverTheirMatricesOnce) {
  std::set<std::pair<int64_t, int64_t>> a, b, c;
  for (int64_t lane = 0; lane < 32; ++lane) {
    for (int64_t reg = 0; reg < 4; ++reg)
      for (int64_t e = 0; e < 2; ++e) {
        RC x = eval2(getMmaAMap(&ctx, reg, e), lane);
        EXPECT_TRUE(a.insert({x.row, x.col}).second);
      }
    for (int64_t reg = 0; reg < 2; ++reg)
      for (int64_t e = 0; e < 2; ++e) {
        RC x = eval2(getMmaBMap(&ctx, reg, e), lane);
        EXPECT_TRUE(b.insert({x.row, x.col}).second);
        RC y = eval2(getMmaAccumulatorMap(&ctx, reg, e), lane);
        EXPECT_TRUE(c.insert({y.row, y.col}).second);
      }
  }
  EXPECT_EQ(a.size(), 16u * 16u);
  EXPECT_EQ(b.size(), 16u * 8u);
  EXPECT_EQ(c.size(), 16u * 8u);
}

/// What a warp's ldmatrix returns: for each lane and register m, two
/// elements of `tile` (row-major, `cols` wide) given the library's address
/// map (lane -> (row, col) relative to `corner`).
using Tile = std::vector<int64_t>;
std::vector<std::vector<std::array<int64_t, 2>>>
emulateLdmatrix(const Tile &tile, int64_t cols, AffineMap address, RC corner,
                int64_t numTiles, bool trans) {
  std::vector<std::vector<std::array<int64_t, 2>>> regs(
      32, std::vector<std::array<int64_t, 2>>(numTiles));
  for (int64_t lane = 0; lane < 32; ++lane)
    for (int64_t m = 0; m < numTiles; ++m)
      for (int64_t j = 0; j < 2; ++j) {
        RC inMatrix = ptxLdmatrix(lane, j, trans);
        // Row inMatrix.row of matrix m starts at the address of lane 8m+row.
        RC start = eval2(address, 8 * m + inMatrix.row);
        int64_t row = corner.row + start.row;
        int64_t col = corner.col + start.col + inMatrix.col;
        regs[lane][m][j] = tile[row * cols + col];
      }
  return regs;
}

TEST_F(FragmentLayout, KeyLdmatrixGivesBFragmentsOfKTransposed) {
  // A key tile [64 keys][128 d] of distinct ids.
  const int64_t keys = 64, dims = 128;
  Tile k(keys * dims);
  for (int64_t i = 0; i < keys * dims; ++i)
    k[i] = i;
  for (int64_t nt = 0; nt < keys / 8; ++nt)
    for (int64_t dc = 0; dc < dims / 32; ++dc) {
      auto regs = emulateLdmatrix(k, dims, getKeyLdmatrixX4Map(&ctx),
                                  {8 * nt, 32 * dc}, 4, /*trans=*/false);
      for (int64_t lane = 0; lane < 32; ++lane)
        for (int64_t m = 0; m < 4; ++m)
          for (int64_t j = 0; j < 2; ++j) {
            // Registers 0, 1: B of k-step 2 dc; 2, 3: of k-step 2 dc + 1.
            RC kn = ptxB(lane, 2 * (m % 2) + j);
            int64_t d = 32 * dc + 16 * (m / 2) + kn.row;
            int64_t key = 8 * nt + kn.col;
            EXPECT_EQ(regs[lane][m][j], key * dims + d)
                << "nt " << nt << " dc " << dc << " lane " << lane;
          }
    }
  // head_dim % 32 == 16: the last k-step by ldmatrix.x2.
  for (int64_t lane = 0; lane < 32; ++lane) {
    auto regs =
        emulateLdmatrix(k, dims, getKeyLdmatrixX2Map(&ctx), {8, 16}, 2, false);
    for (int64_t m = 0; m < 2; ++m)
      for (int64_t j = 0; j < 2; ++j) {
        RC kn = ptxB(lane, 2 * m + j);
        EXPECT_EQ(regs[lane][m][j], (8 + kn.col) * dims + 16 + kn.row);
      }
  }
}

TEST_F(FragmentLayout, ValueLdmatrixTransGivesBFragmentsOfV) {
  const int64_t keys = 64, dims = 64;
  Tile v(keys * dims);
  for (int64_t i = 0; i < keys * dims; ++i)
    v[i] = i;
  for (int64_t kc = 0; kc < keys / 32; ++kc)
    for (int64_t nt = 0; nt < dims / 8; ++nt) {
      auto regs = emulateLdmatrix(v, dims, getValueLdmatrixX4Map(&ctx),
                                  {32 * kc, 8 * nt}, 4, /*trans=*/true);
      for (int64_t lane = 0; lane < 32; ++lane)
        for (int64_t m = 0; m < 4; ++m)
          for (int64_t j = 0; j < 2; ++j) {
            RC kn = ptxB(lane, 2 * (m % 2) + j);
            int64_t key = 32 * kc + 16 * (m / 2) + kn.row;
            int64_t col = 8 * nt + kn.col;
            EXPECT_EQ(regs[lane][m][j], key * dims + col)
                << "kc " << kc << " nt " << nt << " lane " << lane;
          }
    }
  auto regs =
      emulateLdmatrix(v, dims, getValueLdmatrixX2Map(&ctx), {48, 8}, 2, true);
  for (int64_t lane = 0; lane < 32; ++lane)
    for (int64_t m = 0; m < 2; ++m)
      for (int64_t j = 0; j < 2; ++j) {
        RC kn = ptxB(lane, 2 * m + j);
        EXPECT_EQ(regs[lane][m][j], (48 + kn.row) * dims + 8 + kn.col);
      }
}

TEST_F(FragmentLayout, ScoreAccumulatorsArePsAFragments) {
  // Register reg of P's A fragment for k-step kk comes from accumulator
  // (n-tile 2 kk + first, row half second): same (row, key) element.
  for (int64_t lane = 0; lane < 32; ++lane)
    for (int64_t kk = 0; kk < 4; ++kk)
      for (int64_t reg = 0; reg < 4; ++reg)
        for (int64_t e = 0; e < 2; ++e) {
          auto [ntOffset, half] = getScoreSourceOfA(reg);
          RC a = ptxA(lane, 2 * reg + e);
          RC c = ptxC(lane, 2 * half + e);
          EXPECT_EQ(a.row, c.row);
          EXPECT_EQ(16 * kk + a.col, 8 * (2 * kk + ntOffset) + c.col);
        }
}

/// mma.m16n8k16 on a warp, from the lanes' registers (PTX semantics).
void emulateMma(const std::vector<std::array<double, 8>> &a,
                const std::vector<std::array<double, 4>> &b,
                std::vector<std::array<double, 4>> &c) {
  double A[16][16], B[16][8];
  for (int64_t lane = 0; lane < 32; ++lane) {
    for (int64_t i = 0; i < 8; ++i) {
      RC x = ptxA(lane, i);
      A[x.row][x.col] = a[lane][i];
    }
    for (int64_t i = 0; i < 4; ++i) {
      RC x = ptxB(lane, i);
      B[x.row][x.col] = b[lane][i];
    }
  }
  for (int64_t lane = 0; lane < 32; ++lane)
    for (int64_t i = 0; i < 4; ++i) {
      RC x = ptxC(lane, i);
      double sum = 0;
      for (int64_t k = 0; k < 16; ++k)
        sum += A[x.row][k] * B[k][x.col];
      c[lane][i] += sum;
    }
}

TEST_F(FragmentLayout, WarpComputesQKTransposeAndPV) {
  // One warp: 16 query rows, 64 keys, head_dim 64, as TensorCoreTile.cpp
  // composes the instructions.
  const int64_t M = 16, N = 64, D = 64, Dv = 64;
  std::mt19937 gen(7);
  std::uniform_int_distribution<int> dist(-4, 4);
  std::vector<double> q(M * D), k(N * D), v(N * Dv);
  for (double &x : q)
    x = dist(gen);
  for (double &x : k)
    x = dist(gen);
  for (double &x : v)
    x = dist(gen);
  Tile kIds(N * D), vIds(N * Dv);
  for (int64_t i = 0; i < N * D; ++i)
    kIds[i] = i;
  for (int64_t i = 0; i < N * Dv; ++i)
    vIds[i] = i;

  // Query A fragments, loaded by the A map.
  std::vector<std::vector<std::array<double, 8>>> qFrag(
      D / 16, std::vector<std::array<double, 8>>(32));
  for (int64_t ks = 0; ks < D / 16; ++ks)
    for (int64_t lane = 0; lane < 32; ++lane)
      for (int64_t reg = 0; reg < 4; ++reg)
        for (int64_t e = 0; e < 2; ++e) {
          RC x = eval2(getMmaAMap(&ctx, reg, e), lane);
          qFrag[ks][lane][2 * reg + e] = q[x.row * D + 16 * ks + x.col];
        }
  // S = Q K^T.
  std::vector<std::vector<std::array<double, 4>>> s(
      N / 8, std::vector<std::array<double, 4>>(32, {0, 0, 0, 0}));
  for (int64_t nt = 0; nt < N / 8; ++nt)
    for (int64_t dc = 0; dc < D / 32; ++dc) {
      auto ids = emulateLdmatrix(kIds, D, getKeyLdmatrixX4Map(&ctx),
                                 {8 * nt, 32 * dc}, 4, false);
      for (int64_t half = 0; half < 2; ++half) {
        std::vector<std::array<double, 4>> bFrag(32);
        for (int64_t lane = 0; lane < 32; ++lane)
          for (int64_t r = 0; r < 2; ++r)
            for (int64_t j = 0; j < 2; ++j)
              bFrag[lane][2 * r + j] = k[ids[lane][2 * half + r][j]];
        emulateMma(qFrag[2 * dc + half], bFrag, s[nt]);
      }
    }
  // P = S (no softmax: the layout is what is tested), re-packed.
  std::vector<std::vector<std::array<double, 8>>> pFrag(
      N / 16, std::vector<std::array<double, 8>>(32));
  for (int64_t kk = 0; kk < N / 16; ++kk)
    for (int64_t lane = 0; lane < 32; ++lane)
      for (int64_t reg = 0; reg < 4; ++reg) {
        auto [ntOffset, half] = getScoreSourceOfA(reg);
        for (int64_t e = 0; e < 2; ++e)
          pFrag[kk][lane][2 * reg + e] =
              s[2 * kk + ntOffset][lane][2 * half + e];
      }
  // O = P V.
  std::vector<std::vector<std::array<double, 4>>> o(
      Dv / 8, std::vector<std::array<double, 4>>(32, {0, 0, 0, 0}));
  for (int64_t n = 0; n < Dv / 8; ++n)
    for (int64_t kc = 0; kc < N / 32; ++kc) {
      auto ids = emulateLdmatrix(vIds, Dv, getValueLdmatrixX4Map(&ctx),
                                 {32 * kc, 8 * n}, 4, true);
      for (int64_t half = 0; half < 2; ++half) {
        std::vector<std::array<double, 4>> bFrag(32);
        for (int64_t lane = 0; lane < 32; ++lane)
          for (int64_t r = 0; r < 2; ++r)
            for (int64_t j = 0; j < 2; ++j)
              bFrag[lane][2 * r + j] = v[ids[lane][2 * half + r][j]];
        emulateMma(pFrag[2 * kc + half], bFrag, o[n]);
      }
    }

  // Reference.
  std::vector<double> sRef(M * N, 0), oRef(M * Dv, 0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      for (int64_t d = 0; d < D; ++d)
        sRef[i * N + j] += q[i * D + d] * k[j * D + d];
  for (int64_t i = 0; i < M; ++i)
    for (int64_t e = 0; e < Dv; ++e)
      for (int64_t j = 0; j < N; ++j)
        oRef[i * Dv + e] += sRef[i * N + j] * v[j * Dv + e];
  // Read back through the accumulator map, as the epilogue stores.
  for (int64_t lane = 0; lane < 32; ++lane)
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t e = 0; e < 2; ++e) {
        RC x = eval2(getMmaAccumulatorMap(&ctx, r, e), lane);
        for (int64_t nt = 0; nt < N / 8; ++nt)
          EXPECT_EQ(s[nt][lane][2 * r + e], sRef[x.row * N + 8 * nt + x.col]);
        for (int64_t n = 0; n < Dv / 8; ++n)
          EXPECT_EQ(o[n][lane][2 * r + e], oRef[x.row * Dv + 8 * n + x.col]);
      }
}

TEST_F(FragmentLayout, SimtThreadsPartitionTheTiles) {
  // block_q = 64, block_k = 32, v_head_dim = 128: 128 threads.
  const int64_t BQ = 64, BK = 32, Dv = 128, threads = BQ / 4 * 8;
  std::map<std::pair<int64_t, int64_t>, int64_t> scoreOwner, outOwner;
  for (int64_t t = 0; t < threads; ++t) {
    for (int64_t i = 0; i < kSimtRowsPerThread; ++i) {
      int64_t row = eval(getSimtRowMap(&ctx, i), 0, t);
      // Threads sharing a row are the 8 lanes t ^ {1, 2, 4} of one warp.
      for (int64_t x : {1, 2, 4})
        EXPECT_EQ(eval(getSimtRowMap(&ctx, i), 0, t ^ x), row);
      EXPECT_EQ(row / 16, t / 32) << "a warp owns 16 consecutive rows";
      for (int64_t j = 0; j < BK / kSimtGroupLanes; ++j) {
        int64_t col = eval(getSimtScoreColMap(&ctx, j), 0, t);
        EXPECT_TRUE(scoreOwner.insert({{row, col}, t}).second);
      }
      for (int64_t y = 0; y < Dv / 32; ++y) {
        int64_t col = eval(getSimtOutputColMap(&ctx, y), 0, t);
        EXPECT_EQ(col % 4, 0);
        for (int64_t z = 0; z < 4; ++z)
          EXPECT_TRUE(outOwner.insert({{row, col + z}, t}).second);
      }
    }
  }
  EXPECT_EQ(scoreOwner.size(), size_t(BQ * BK));
  EXPECT_EQ(outOwner.size(), size_t(BQ * Dv));
  for (auto &[rc, t] : scoreOwner) {
    EXPECT_LT(rc.first, BQ);
    EXPECT_LT(rc.second, BK);
  }
}

} // namespace
