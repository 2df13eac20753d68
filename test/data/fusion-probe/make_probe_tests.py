#!/usr/bin/env python3
"""Writes the fusion regression tests of the hostile probe's findings
(test/Transforms/fuse-attention-probe.mlir and the mlir-runner tests
test/Integration/CPU/fuse-attention-run-probe-*.mlir): unfused attention in
the form torch-mlir exports it (B=1, H=2, Sq=Sk=8, D=16), with the mask or
bias the probe found misread. Run from the repository root:

    python3 test/data/fusion-probe/make_probe_tests.py

Each variant is (name, what the FileCheck test expects, mask/bias IR). The
runner tests build their inputs from indices (no data files), run the export
unfused and fused through attn-cpu-pipeline, and compare the printed outputs
NaN-aware (compare-printed-memrefs.py).
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

HEADER = """#map = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#map2 = affine_map<(d0, d1, d2, d3) -> ()>
#map3 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
#map4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, 0)>
#mkey = affine_map<(d0, d1, d2, d3) -> (0, 0, 0, d3)>
#mrow = affine_map<(d0, d1, d2, d3) -> (0, 0, d2, 0)>
#mone = affine_map<(d0, d1, d2, d3) -> (0, 0, 0, 0)>
"""

# The scores S (%5, scaled) -> %8 (masked or biased); `extra` are arguments.
BODY = """  func.func @attention(%arg0: tensor<1x2x8x16xf32>, %arg1: tensor<1x2x8x16xf32>, %arg2: tensor<1x2x8x16xf32>{args}) -> tensor<1x2x8x16xf32> {{
    %cst = arith.constant 0.000000e+00 : f32
    %true = arith.constant true
    %c0_i64 = arith.constant 0 : i64
    %cst_0 = arith.constant 0xFF800000 : f32
    %cst_1 = arith.constant dense<0xFF800000> : tensor<f32>
    %cst_2 = arith.constant {divisor} : f32
    %0 = tensor.empty() : tensor<1x2x16x8xf32>
    %transposed = linalg.transpose ins(%arg1 : tensor<1x2x8x16xf32>) outs(%0 : tensor<1x2x16x8xf32>) permutation = [0, 1, 3, 2]
    %collapsed = tensor.collapse_shape %arg0 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %collapsed_3 = tensor.collapse_shape %transposed [[0, 1], [2], [3]] : tensor<1x2x16x8xf32> into tensor<2x16x8xf32>
    %1 = tensor.empty() : tensor<2x8x8xf32>
    %2 = linalg.fill ins(%cst : f32) outs(%1 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %3 = linalg.batch_matmul ins(%collapsed, %collapsed_3 : tensor<2x8x16xf32>, tensor<2x16x8xf32>) outs(%2 : tensor<2x8x8xf32>) -> tensor<2x8x8xf32>
    %expanded = tensor.expand_shape %3 [[0, 1], [2], [3]] output_shape [1, 2, 8, 8] : tensor<2x8x8xf32> into tensor<1x2x8x8xf32>
    %4 = tensor.empty() : tensor<1x2x8x8xf32>
    %5 = linalg.generic {{indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%expanded : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {{
    ^bb0(%in: f32, %out: f32):
      %23 = arith.divf %in, %cst_2 : f32
      linalg.yield %23 : f32
    }} -> tensor<1x2x8x8xf32>
{mask}
    %9 = tensor.empty() : tensor<1x2x8xi64>
    %10 = linalg.fill ins(%c0_i64 : i64) outs(%9 : tensor<1x2x8xi64>) -> tensor<1x2x8xi64>
    %11 = tensor.empty() : tensor<1x2x8xf32>
    %12 = linalg.fill ins(%cst_0 : f32) outs(%11 : tensor<1x2x8xf32>) -> tensor<1x2x8xf32>
    %13:2 = linalg.generic {{indexing_maps = [#map, #map3, #map3], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}} ins(%8 : tensor<1x2x8x8xf32>) outs(%12, %10 : tensor<1x2x8xf32>, tensor<1x2x8xi64>) {{
    ^bb0(%in: f32, %out: f32, %out_8: i64):
      %23 = linalg.index 3 : index
      %24 = arith.index_cast %23 : index to i64
      %25 = arith.maximumf %in, %out : f32
      %26 = arith.cmpf ogt, %in, %out : f32
      %27 = arith.select %26, %24, %out_8 : i64
      linalg.yield %25, %27 : f32, i64
    }} -> (tensor<1x2x8xf32>, tensor<1x2x8xi64>)
    %expanded_4 = tensor.expand_shape %13#0 [[0], [1], [2, 3]] output_shape [1, 2, 8, 1] : tensor<1x2x8xf32> into tensor<1x2x8x1xf32>
    %14 = linalg.generic {{indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%8, %expanded_4 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {{
    ^bb0(%in: f32, %in_8: f32, %out: f32):
      %23 = arith.subf %in, %in_8 : f32
      linalg.yield %23 : f32
    }} -> tensor<1x2x8x8xf32>
    %15 = linalg.generic {{indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%14 : tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {{
    ^bb0(%in: f32, %out: f32):
      %23 = math.exp %in : f32
      linalg.yield %23 : f32
    }} -> tensor<1x2x8x8xf32>
    %16 = tensor.empty() : tensor<1x2x8x1xf32>
    %17 = linalg.fill ins(%cst : f32) outs(%16 : tensor<1x2x8x1xf32>) -> tensor<1x2x8x1xf32>
    %18 = linalg.generic {{indexing_maps = [#map, #map4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}} ins(%15 : tensor<1x2x8x8xf32>) outs(%17 : tensor<1x2x8x1xf32>) {{
    ^bb0(%in: f32, %out: f32):
      %23 = arith.addf %in, %out : f32
      linalg.yield %23 : f32
    }} -> tensor<1x2x8x1xf32>
    %19 = linalg.generic {{indexing_maps = [#map, #map4, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%15, %18 : tensor<1x2x8x8xf32>, tensor<1x2x8x1xf32>) outs(%4 : tensor<1x2x8x8xf32>) {{
    ^bb0(%in: f32, %in_8: f32, %out: f32):
      %23 = arith.divf %in, %in_8 : f32
      linalg.yield %23 : f32
    }} -> tensor<1x2x8x8xf32>
    %collapsed_5 = tensor.collapse_shape %19 [[0, 1], [2], [3]] : tensor<1x2x8x8xf32> into tensor<2x8x8xf32>
    %collapsed_6 = tensor.collapse_shape %arg2 [[0, 1], [2], [3]] : tensor<1x2x8x16xf32> into tensor<2x8x16xf32>
    %20 = tensor.empty() : tensor<2x8x16xf32>
    %21 = linalg.fill ins(%cst : f32) outs(%20 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %22 = linalg.batch_matmul ins(%collapsed_5, %collapsed_6 : tensor<2x8x8xf32>, tensor<2x8x16xf32>) outs(%21 : tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %expanded_7 = tensor.expand_shape %22 [[0, 1], [2], [3]] output_shape [1, 2, 8, 16] : tensor<2x8x16xf32> into tensor<1x2x8x16xf32>
    return %expanded_7 : tensor<1x2x8x16xf32>
  }}
"""


def select_mask(mask_value, mask_type, mask_map):
    """%8 = select(hidden, -inf, S) with `hidden` read through mask_map."""
    return f"""    %8 = linalg.generic {{indexing_maps = [{mask_map}, #map2, #map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins({mask_value}, %cst_1, %5 : {mask_type}, tensor<f32>, tensor<1x2x8x8xf32>) outs(%4 : tensor<1x2x8x8xf32>) {{
    ^bb0(%in: i1, %in_8: f32, %in_9: f32, %out: f32):
      %23 = arith.select %in, %in_8, %in_9 : f32
      linalg.yield %23 : f32
    }} -> tensor<1x2x8x8xf32>"""


def select_keep(mask_value, mask_type, mask_map):
    """%8 = select(keep, S, -inf) with `keep` read through mask_map."""
    return select_mask(mask_value, mask_type, mask_map).replace(
        "arith.select %in, %in_8, %in_9", "arith.select %in, %in_9, %in_8")


def bias(bias_value, bias_type, bias_map):
    """%8 = S + bias with the bias read through bias_map."""
    return f"""    %8 = linalg.generic {{indexing_maps = [#map, {bias_map}, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%5, {bias_value} : tensor<1x2x8x8xf32>, {bias_type}) outs(%4 : tensor<1x2x8x8xf32>) {{
    ^bb0(%in: f32, %in_8: f32, %out: f32):
      %23 = arith.addf %in, %in_8 : f32
      linalg.yield %23 : f32
    }} -> tensor<1x2x8x8xf32>"""


def bools(values):
    return ", ".join("true" if v else "false" for v in values)


def index_mask(*body):
    """A [1, 1, 8, 8] i1 mask computed from %i (query row) and %j (key) by
    the ops of `body`, the last of which defines %result."""
    lines = "\n".join("      " + line for line in body)
    return f"""    %m0 = tensor.empty() : tensor<1x1x8x8xi1>
    %m1 = linalg.generic {{indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} outs(%m0 : tensor<1x1x8x8xi1>) {{
    ^bb0(%out: i1):
      %i = linalg.index 2 : index
      %j = linalg.index 3 : index
{lines}
      linalg.yield %result : i1
    }} -> tensor<1x1x8x8xi1>
"""


# hidden = (keep != true), keep = (kv <= q): torch's ~tril written with a
# comparison against the constant true.
NOT_KEEP = index_mask("%keep = arith.cmpi ule, %j, %i : index",
                      "%result = arith.cmpi ne, %keep, %true : i1")

# keep = (hidden != true), hidden = (kv > q): the probe's form, a keep mask
# that evaluated as keep-everything (true held as -1, computed i1 as 1), so
# the mask was dropped.
NOT_HIDDEN = index_mask("%hidden = arith.cmpi ugt, %j, %i : index",
                        "%result = arith.cmpi ne, %hidden, %true : i1")

# hidden = extsi(keep) != 1 in i8: true extends to -1, not 1.
EXTSI_KEEP = index_mask("%keep = arith.cmpi ule, %j, %i : index",
                        "%wide = arith.extsi %keep : i1 to i8",
                        "%c1_i8 = arith.constant 1 : i8",
                        "%result = arith.cmpi ne, %wide, %c1_i8 : i8")

KEY_MASK = "tensor<1x1x1x8xi1>"

VARIANTS = [
    # 1. A constant per-key mask broadcast over query rows (constant-0 map):
    #    keys 6 and 7 hidden for every row. Read at its own 1 x Sk it looked
    #    like sliding_window<left = 0, right = 5>; it is no band.
    ("per_key_constant",
     "// CHECK: arith.constant dense<{{.+}}false, false, true, true{{.+}}> : tensor<1x1x1x8xi1>\n"
     "// CHECK: attn.attention {scale = 2.500000e-01 : f32} ins({{.+}}) mask({{.+}} : tensor<1x1x1x8xi1>)\n"
     "// CHECK-NOT: #attn",
     "", "4.000000e+00",
     f"    %hide = arith.constant dense<[[[[{bools([0, 0, 0, 0, 0, 0, 1, 1])}]]]]> : {KEY_MASK}\n"
     + select_mask("%hide", KEY_MASK, "#mkey")),
    # 1. Only key 0 kept for every row: it looked like #attn.causal.
    ("first_key_only",
     "// CHECK: attn.attention {scale = 2.500000e-01 : f32} ins({{.+}}) mask({{.+}} : tensor<1x1x1x8xi1>)\n"
     "// CHECK-NOT: #attn",
     "", "4.000000e+00",
     f"    %hide = arith.constant dense<[[[[{bools([0, 1, 1, 1, 1, 1, 1, 1])}]]]]> : {KEY_MASK}\n"
     + select_mask("%hide", KEY_MASK, "#mkey")),
    # 2. hidden = (keep != true): not keep; it evaluated as keep-everything
    #    and the mask was dropped. It is the causal mask.
    ("not_keep_cmpi_true",
     "// CHECK: attn.attention {mask_kind = #attn.causal, scale = 2.500000e-01 : f32}",
     "", "4.000000e+00",
     NOT_KEEP + select_mask("%m1", "tensor<1x1x8x8xi1>", "#mrowkey")),
    ("not_hidden_cmpi_true",
     "// CHECK: attn.attention {mask_kind = #attn.causal, scale = 2.500000e-01 : f32}",
     "", "4.000000e+00",
     NOT_HIDDEN + select_keep("%m1", "tensor<1x1x8x8xi1>", "#mrowkey")),
    # 2. extsi of i1 true is -1: hidden = (extsi(keep) != 1) hides every key
    #    (rows with no key: NaN unfused), so it stays unfused.
    ("extsi_keep",
     "// CHECK-NOT: attn.attention",
     "", "4.000000e+00",
     EXTSI_KEEP + select_mask("%m1", "tensor<1x1x8x8xi1>", "#mrowkey")),
    # 3. A mask broadcast over keys ([1, 1, Sq, 1]): attn's mask has every
    #    key, so it stays unfused (it made invalid IR).
    ("per_row_mask_argument",
     "// CHECK-NOT: attn.attention",
     ", %arg3: tensor<1x1x8x1xi1>", "4.000000e+00",
     select_mask("%arg3", "tensor<1x1x8x1xi1>", "#mrow")),
    # 3. A bias broadcast over keys, and a scalar bias: unfused.
    ("per_row_bias",
     "// CHECK-NOT: attn.attention",
     ", %arg3: tensor<1x1x8x1xf32>", "4.000000e+00",
     bias("%arg3", "tensor<1x1x8x1xf32>", "#mrow")),
    ("scalar_bias",
     "// CHECK-NOT: attn.attention",
     ", %arg3: tensor<1x1x1x1xf32>", "4.000000e+00",
     bias("%arg3", "tensor<1x1x1x1xf32>", "#mone")),
    # 3. A scale that overflows f32 when folded (1 / 1e-45): unfused.
    ("scale_overflows_f32",
     "// CHECK-NOT: attn.attention",
     "", "1.000000e-45",
     select_mask("%hide", KEY_MASK, "#mkey").replace(
         "    %8 =", f"    %hide = arith.constant dense<false> : {KEY_MASK}\n    %8 =")),
]

# Runner tests: the variants whose fused and unfused outputs must agree.
RUN = {"per_key_constant", "first_key_only", "not_keep_cmpi_true",
       "not_hidden_cmpi_true",
       "extsi_keep", "per_row_mask_argument", "per_row_bias"}


def function(name, args, divisor, mask):
    return BODY.format(args=args, divisor=divisor, mask=mask)


def main_function(args):
    """Inputs from indices: x[b, h, s, d] = ((7 s + 3 d + 5 h + seed) % 17) / 8 - 1."""
    lines = ["  func.func private @printMemrefF32(tensor<*xf32>)",
             "  func.func @main() {"]

    def tensor(name, shape, seed, elt="f32"):
        rank = len(shape)
        ty = "tensor<" + "x".join(map(str, shape)) + "x" + elt + ">"
        idmap = "affine_map<(" + ", ".join(f"d{i}" for i in range(rank)) + ") -> (" + ", ".join(f"d{i}" for i in range(rank)) + ")>"
        body = [f"    %{name}_e = tensor.empty() : {ty}",
                f"    %{name} = linalg.generic {{indexing_maps = [{idmap}], iterator_types = [" + ", ".join(['"parallel"'] * rank) + f"]}} outs(%{name}_e : {ty}) {{",
                f"    ^bb0(%o: {elt}):"]
        terms = []
        for i, k in enumerate([5, 11, 7, 3][-rank:]):
            body.append(f"      %{name}_i{i} = linalg.index {i} : index")
            body.append(f"      %{name}_k{i} = arith.constant {k} : index")
            body.append(f"      %{name}_t{i} = arith.muli %{name}_i{i}, %{name}_k{i} : index")
            terms.append(f"%{name}_t{i}")
        acc = terms[0]
        for i, t in enumerate(terms[1:]):
            body.append(f"      %{name}_s{i} = arith.addi {acc}, {t} : index")
            acc = f"%{name}_s{i}"
        body += [f"      %{name}_seed = arith.constant {seed} : index",
                 f"      %{name}_a = arith.addi {acc}, %{name}_seed : index",
                 f"      %{name}_m17 = arith.constant 17 : index",
                 f"      %{name}_r = arith.remui %{name}_a, %{name}_m17 : index"]
        if elt == "i1":
            body += [f"      %{name}_m3 = arith.constant 3 : index",
                     f"      %{name}_r3 = arith.remui %{name}_r, %{name}_m3 : index",
                     f"      %{name}_z = arith.constant 0 : index",
                     f"      %{name}_v = arith.cmpi ne, %{name}_r3, %{name}_z : index"]
        else:
            body += [f"      %{name}_ri = arith.index_cast %{name}_r : index to i32",
                     f"      %{name}_rf = arith.sitofp %{name}_ri : i32 to f32",
                     f"      %{name}_8 = arith.constant 0.125 : f32",
                     f"      %{name}_1 = arith.constant 1.0 : f32",
                     f"      %{name}_sc = arith.mulf %{name}_rf, %{name}_8 : f32",
                     f"      %{name}_v = arith.subf %{name}_sc, %{name}_1 : f32"]
        body += [f"      linalg.yield %{name}_v : {elt}", f"    }} -> {ty}"]
        return body, ty

    call_args, call_types = [], []
    for n, seed in (("q", 1), ("k", 4), ("v", 9)):
        body, ty = tensor(n, [1, 2, 8, 16], seed)
        lines += body
        call_args.append("%" + n)
        call_types.append(ty)
    if args:
        ty = args.split(": ")[1]
        shape = [int(x) for x in ty[len("tensor<"):].split("x")[:-1]]
        elt = ty.rstrip(">").split("x")[-1]
        body, ty = tensor("m", shape, 2, elt)
        lines += body
        call_args.append("%m")
        call_types.append(ty)
    lines += [f"    %o = call @attention({', '.join(call_args)}) : ({', '.join(call_types)}) -> tensor<1x2x8x16xf32>",
              "    %u = tensor.cast %o : tensor<1x2x8x16xf32> to tensor<*xf32>",
              "    call @printMemrefF32(%u) : (tensor<*xf32>) -> ()",
              "    return",
              "  }"]
    return "\n".join(lines) + "\n"


def write_filecheck():
    parts = ["""// Generated by test/data/fusion-probe/make_probe_tests.py: the fusion
// inputs a hostile probe found misread (issue: silent wrong results). Each
// must fuse into what it means, or stay unfused; the runner tests
// (Integration/CPU/fuse-attention-run-probe-*.mlir) check the numbers.
// RUN: attn-opt %s -split-input-file --attn-fuse-attention | FileCheck %s
"""]
    for name, check, args, divisor, mask in VARIANTS:
        parts.append(f"// CHECK-LABEL: func.func @attention\n{check}\n"
                     f"// {name}\n" + HEADER.replace("#mone", "#mrowkey = affine_map<(d0, d1, d2, d3) -> (0, 0, d2, d3)>\n#mone") +
                     "module {\n" + function(name, args, divisor, mask) + "}\n")
    path = os.path.join(ROOT, "test", "Transforms", "fuse-attention-probe.mlir")
    with open(path, "w") as f:
        f.write("\n// -----\n\n".join(parts))


def write_runners():
    for name, check, args, divisor, mask in VARIANTS:
        if name not in RUN:
            continue
        path = os.path.join(ROOT, "test", "Integration", "CPU",
                            f"fuse-attention-run-probe-{name.replace('_', '-')}.mlir")
        with open(path, "w") as f:
            f.write(f"""// Generated by test/data/fusion-probe/make_probe_tests.py ({name}):
// the export run unfused (the CPU pipeline's loops) and after
// attn-fuse-attention; the outputs agree to 4e-5, NaN only where NaN.
// RUN: attn-opt %s --attn-cpu-pipeline | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_runner_utils > %t.unfused
// RUN: attn-opt %s --attn-fuse-attention --attn-cpu-pipeline | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_runner_utils > %t.fused
// RUN: %python %S/compare-printed-memrefs.py %t.unfused %t.fused 4e-5
""" + HEADER.replace("#mone", "#mrowkey = affine_map<(d0, d1, d2, d3) -> (0, 0, d2, d3)>\n#mone")
                    + "module {\n" + function(name, args, divisor, mask)
                    + main_function(args) + "}\n")


def at_length(text, n):
    """`text` (the Sq = Sk = 8 export) at Sq = Sk = n."""
    for old, new in (("x8x16x", f"x{n}x16x"), ("x16x8x", f"x16x{n}x"),
                     ("x8x8x", f"x{n}x{n}x"), ("x8xi64", f"x{n}xi64"),
                     ("x8xf32", f"x{n}xf32"), ("x8x1x", f"x{n}x1x"),
                     ("[1, 2, 8, 8]", f"[1, 2, {n}, {n}]"),
                     ("[1, 2, 8, 1]", f"[1, 2, {n}, 1]"),
                     ("[1, 2, 8, 16]", f"[1, 2, {n}, 16]")):
        text = text.replace(old, new)
    return text


# 4. A 4096 x 4096 mask built through two chained generics: evaluating it
#    would hold 2 x 2^24 elements, over the evaluator's budget (it took 25 s
#    and 890 MB with four). The pass says so and leaves the IR unfused.
BUDGET_MASK = """    %m0 = tensor.empty() : tensor<1x1x4096x4096xi1>
    %m1 = linalg.generic {indexing_maps = [#map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} outs(%m0 : tensor<1x1x4096x4096xi1>) {
    ^bb0(%out: i1):
      %i = linalg.index 2 : index
      %j = linalg.index 3 : index
      %keep = arith.cmpi ule, %j, %i : index
      linalg.yield %keep : i1
    } -> tensor<1x1x4096x4096xi1>
    %m2 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%m1 : tensor<1x1x4096x4096xi1>) outs(%m0 : tensor<1x1x4096x4096xi1>) {
    ^bb0(%in: i1, %out: i1):
      %hidden = arith.xori %in, %true : i1
      linalg.yield %hidden : i1
    } -> tensor<1x1x4096x4096xi1>
    // expected-remark @+1 {{attn-fuse-attention: this mask is too large to evaluate}}
""" + select_mask("%m2", "tensor<1x1x8x8xi1>", "#mrowkey").replace("1x1x8x8", "1x1x4096x4096")


def write_budget():
    path = os.path.join(ROOT, "test", "Transforms", "fuse-attention-budget.mlir")
    with open(path, "w") as f:
        f.write("""// Generated by test/data/fusion-probe/make_probe_tests.py: the mask
// evaluator of attn-fuse-attention has a total budget of work and memory;
// beyond it the pass says so (a remark) and leaves the attention unfused.
// RUN: attn-opt %s --attn-fuse-attention -verify-diagnostics | FileCheck %s
// CHECK-LABEL: func.func @attention
// CHECK-NOT: attn.attention
""" + HEADER.replace("#mone", "#mrowkey = affine_map<(d0, d1, d2, d3) -> (0, 0, d2, d3)>\n#mone")
                + "module {\n" + at_length(function("budget", "", "4.000000e+00", BUDGET_MASK), 4096) + "}\n")


if __name__ == "__main__":
    write_filecheck()
    write_runners()
    write_budget()
