"""Swap attn-mlir into Hugging Face transformers models.

    from transformers import AutoModel
    import attn_mlir.hf
    model = AutoModel.from_pretrained(path)
    attn_mlir.hf.use_attn_mlir(model)          # every attention layer now runs
    model(**inputs)                            # torch.ops.attn_mlir.sdpa

use_attn_mlir registers an attention function named "attn_mlir" with
transformers' AttentionInterface (and the SDPA mask format with
AttentionMaskInterface: boolean masks, None when nothing is masked) and
switches the model to it, so every module that dispatches through
``ALL_ATTENTION_FUNCTIONS`` (BERT, Llama, Mistral, Qwen, ... in transformers
>= 4.48) calls the attn_mlir::sdpa operator. ``patch_sdpa()`` is the
fallback for code that calls torch.nn.functional.scaled_dot_product_attention
directly.
"""

import contextlib

import torch

from . import torch_ops

__all__ = ["ATTN_IMPLEMENTATION", "attention_forward", "register",
           "use_attn_mlir", "patch_sdpa"]

ATTN_IMPLEMENTATION = "attn_mlir"


def attention_forward(module, query, key, value, attention_mask, dropout=0.0,
                      scaling=None, is_causal=None, **kwargs):
    """An AttentionInterface function: query [B, Hq, L, E], key/value
    [B, Hkv, S, E] (as transformers passes them), attention_mask a bool
    [B|1, 1|Hq, L, S] mask (True = attend) or None. Returns
    ([B, L, Hq, Ev] output, None) like transformers' sdpa_attention_forward
    (no attention weights)."""
    if kwargs.get("output_attentions", False):
        raise ValueError("attn_mlir attention does not return attention weights")
    if kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None:
        raise ValueError("attn_mlir attention does not support softcap or "
                         "position_bias")
    groups = getattr(module, "num_key_value_groups", 1)
    if is_causal is None:
        is_causal = getattr(module, "is_causal", True)
    # As transformers' SDPA path: the causal flag only without an explicit
    # mask and for more than one query.
    is_causal = bool(query.shape[2] > 1 and attention_mask is None and is_causal)
    if attention_mask is not None and attention_mask.dim() == 4 and \
            attention_mask.shape[-1] != key.shape[-2]:
        attention_mask = attention_mask[..., : key.shape[-2]]
    out = torch.ops.attn_mlir.sdpa(
        query, key, value, attention_mask,
        dropout if module.training else 0.0, is_causal, scaling, groups > 1)
    return out.transpose(1, 2).contiguous(), None


def register():
    """Registers the "attn_mlir" attention implementation with transformers."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    AttentionInterface.register(ATTN_IMPLEMENTATION, attention_forward)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)


def use_attn_mlir(model):
    """Makes every attention layer of a transformers model run on attn-mlir
    (see the module docstring); returns the model. Raises RuntimeError when
    the model does not dispatch attention through AttentionInterface."""
    register()
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(ATTN_IMPLEMENTATION)
    else:  # older transformers
        for m in model.modules():
            cfg = getattr(m, "config", None)
            if cfg is not None and hasattr(cfg, "_attn_implementation"):
                cfg._attn_implementation = ATTN_IMPLEMENTATION
    if getattr(model.config, "_attn_implementation", None) != ATTN_IMPLEMENTATION:
        raise RuntimeError(f"{type(model).__name__} cannot switch its attention "
                           "implementation; use attn_mlir.hf.patch_sdpa()")
    return model


@contextlib.contextmanager
def patch_sdpa():
    """Within the block, torch.nn.functional.scaled_dot_product_attention is
    attn_mlir::sdpa (for models that call it directly)."""
    original = torch.nn.functional.scaled_dot_product_attention

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
             scale=None, enable_gqa=False):
        return torch.ops.attn_mlir.sdpa(query, key, value, attn_mask, dropout_p,
                                        is_causal, scale, enable_gqa)

    torch.nn.functional.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = original


# The operator must exist before a model calls it.
assert torch_ops.sdpa is not None
