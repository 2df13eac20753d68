// Pipeline options the code generator cannot honour are errors, not
// silently accepted values or crashes (codegen=bogus was accepted,
// vector-width=0 raised SIGFPE, -16 exhausted memory).
// RUN: not attn-opt %s --attn-cpu-pipeline="codegen=bogus" 2>&1 | FileCheck %s --check-prefix=CODEGEN
// CODEGEN: for the --codegen option: Cannot find option named 'bogus'!
// RUN: not attn-opt %s --attn-cpu-pipeline="vector-width=0" 2>&1 | FileCheck %s --check-prefix=WIDTH
// WIDTH: error: 'attn.online_attention' op CPU lowering supports vector widths of 8 (AVX2) and 16 (AVX-512) f32 lanes, got 0
// RUN: not attn-opt %s --attn-cpu-pipeline="tile-sizes=1,1,0,64" 2>&1 | FileCheck %s --check-prefix=TILES
// TILES: attn-tile-attention: tile-sizes must be 4 positive integers

func.func @f(%q: tensor<1x2x64x16xf32>, %o: tensor<1x2x64x16xf32>) -> tensor<1x2x64x16xf32> {
  %r = attn.attention ins(%q, %q, %q : tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>, tensor<1x2x64x16xf32>)
         outs(%o : tensor<1x2x64x16xf32>) -> tensor<1x2x64x16xf32>
  return %r : tensor<1x2x64x16xf32>
}
