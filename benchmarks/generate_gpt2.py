"""Greedy generation with a small GPT-2 (seeded random weights: transformers
ships none offline) on stock attention and on attn-mlir, side by side in one
process: tokens per second, whether the tokens are identical, and the
compiles after warm-up (issue: serving).

    pip install torch transformers
    PYTHONPATH=build/python python3 benchmarks/generate_gpt2.py [--batch 1 8]
        [--prompt 512] [--new 64] [--threads 2]

Each batch size runs stock, attn-mlir (cold: compiles), stock again and
attn-mlir again (warm), and reports the better of the two stock runs
against the warm attn-mlir run. The disk cache is not used.
"""
import argparse
import os
import time

os.environ["ATTN_MLIR_CACHE_DIR"] = ""

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

import attn_mlir  # noqa: E402
import attn_mlir.hf  # noqa: E402


def generate(model, ids, new):
    with torch.no_grad():
        start = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, pad_token_id=0)
        return out, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = GPT2Config(n_layer=4, n_head=8, n_embd=512, vocab_size=5000,
                        n_positions=args.prompt + args.new,
                        bos_token_id=0, eos_token_id=0,
                        attn_implementation="sdpa")
    stock_model = GPT2LMHeadModel(config).eval()
    ours_model = GPT2LMHeadModel(config).eval()
    ours_model.load_state_dict(stock_model.state_dict())
    attn_mlir.hf.use_attn_mlir(ours_model)
    print(f"GPT-2 4 layers, 8 heads, d 512; prompt {args.prompt}, "
          f"{args.new} new tokens, {args.threads} threads, torch "
          f"{torch.__version__}\n")
    print(f"{'batch':>5} {'stock tok/s':>12} {'attn-mlir tok/s':>16} "
          f"{'ratio':>6} {'same tokens':>12} {'warm compiles':>14}")
    for batch in args.batch:
        ids = torch.randint(0, config.vocab_size, (batch, args.prompt))
        stock, t_stock = generate(stock_model, ids, args.new)
        ours, _ = generate(ours_model, ids, args.new)  # cold: compiles
        _, t_stock2 = generate(stock_model, ids, args.new)
        before = attn_mlir.cache_stats()["compiles"]
        ours2, t_ours = generate(ours_model, ids, args.new)
        warm_compiles = attn_mlir.cache_stats()["compiles"] - before
        tokens = batch * args.new
        best_stock = tokens / min(t_stock, t_stock2)
        print(f"{batch:>5} {best_stock:>12.1f} {tokens / t_ours:>16.1f} "
              f"{tokens / t_ours / best_stock:>6.2f} "
              f"{str(torch.equal(stock, ours) and torch.equal(stock, ours2)):>12} "
              f"{warm_compiles:>14}")


if __name__ == "__main__":
    main()
