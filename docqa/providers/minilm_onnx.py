"""Build the all-MiniLM-L6-v2 ONNX graph (BERT encoder + mean pooling + L2 normalise) from safetensors."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Bump when the graph built below changes, so cached graphs from older code are never reused.
GRAPH_VERSION = 1
OPSET = 17          # LayerNormalization is a standard op from 17 on
IR_VERSION = 8      # the IR version that goes with opset 17; newer onnx would stamp one ORT may not read


@dataclass(frozen=True)
class BertShape:
    """The few numbers of a BERT config.json the graph depends on."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    eps: float

    @classmethod
    def from_config(cls, config: dict) -> BertShape:
        """Shape read from a Hugging Face BertModel config.json dict."""
        if config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"unsupported activation {config['hidden_act']!r}: the graph uses erf GELU")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        return cls(layers=config["num_hidden_layers"], hidden=config["hidden_size"],
                   heads=config["num_attention_heads"], intermediate=config["intermediate_size"],
                   eps=float(config["layer_norm_eps"]))


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self._n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], *, domain: str = "", name: str = "", **attrs) -> str:
        """Append one node; returns its (single) output's name. `name` is for the weight-bearing nodes."""
        from onnx import helper

        self._n += 1
        node_name = name or f"{op_type}_{self._n}"
        output = f"{node_name}_out"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=node_name, domain=domain or None, **attrs))
        return output


def build_model(weights: dict[str, np.ndarray], config: dict, *, fused: bool = True):
    """An fp32 onnx.ModelProto: (input_ids, attention_mask) int64 [batch, seq] -> embeddings [batch, hidden]."""
    from onnx import TensorProto, helper

    shape = BertShape.from_config(config)
    g = _Graph()

    def W(name: str) -> np.ndarray:
        return np.asarray(weights[name], dtype=np.float32)

    # Embeddings. token_type_ids are always 0 for a single sentence, so that row is folded into
    # the position table; the sum order differs from Hugging Face's only by fp32 rounding.
    pos_table = W("embeddings.position_embeddings.weight") + W("embeddings.token_type_embeddings.weight")[0]
    seq_len_1d = g.op("Shape", ["input_ids"], start=1, end=2)
    zero_1d = g.const("zero_1d", np.array([0], np.int64))
    positions = g.op("Slice", [g.const("pos_table", pos_table), zero_1d, seq_len_1d, zero_1d])
    words = g.op("Gather", [g.const("word_table", W("embeddings.word_embeddings.weight")), "input_ids"], axis=0)
    x = g.op("LayerNormalization", [g.op("Add", [words, positions]),
                                    g.const("emb_ln_w", W("embeddings.LayerNorm.weight")),
                                    g.const("emb_ln_b", W("embeddings.LayerNorm.bias"))],
             axis=-1, epsilon=shape.eps)

    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    if fused:
        mask_i32 = g.op("Cast", ["attention_mask"], to=TensorProto.INT32)
    else:
        # (1 - mask) * -10000 broadcast over heads and query positions, as Hugging Face BERT does.
        mask_4d = g.op("Unsqueeze", [mask_f, g.const("axes12", np.array([1, 2], np.int64))])
        mask_bias = g.op("Mul", [g.op("Sub", [g.const("one_f", np.array(1.0, np.float32)), mask_4d]),
                                 g.const("neg_big", np.array(-10000.0, np.float32))])

    head_dim = shape.hidden // shape.heads
    scale = 1.0 / math.sqrt(head_dim)
    for i in range(shape.layers):
        p = f"encoder.layer.{i}."
        if fused:
            qkv_w = np.concatenate([W(p + f"attention.self.{n}.weight").T for n in ("query", "key", "value")], axis=1)
            qkv_b = np.concatenate([W(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
            ctx = g.op("Attention", [x, g.const(f"l{i}_qkv_w", qkv_w), g.const(f"l{i}_qkv_b", qkv_b), mask_i32],
                       domain="com.microsoft", num_heads=shape.heads, name=f"l{i}_attention")
        else:
            ctx = _plain_attention(g, x, mask_bias, W, p, i, shape, scale)
        attn_out = g.op("MatMul", [ctx, g.const(f"l{i}_ao_w", W(p + "attention.output.dense.weight").T)], name=f"l{i}_ao")
        x = _add_norm(g, attn_out, x, W(p + "attention.output.dense.bias"),
                      W(p + "attention.output.LayerNorm.weight"), W(p + "attention.output.LayerNorm.bias"),
                      f"l{i}_aln", shape.eps, fused)
        h = g.op("MatMul", [x, g.const(f"l{i}_ff1_w", W(p + "intermediate.dense.weight").T)], name=f"l{i}_ff1")
        h = _bias_gelu(g, h, g.const(f"l{i}_ff1_b", W(p + "intermediate.dense.bias")), fused)
        h = g.op("MatMul", [h, g.const(f"l{i}_ff2_w", W(p + "output.dense.weight").T)], name=f"l{i}_ff2")
        x = _add_norm(g, h, x, W(p + "output.dense.bias"), W(p + "output.LayerNorm.weight"),
                      W(p + "output.LayerNorm.bias"), f"l{i}_oln", shape.eps, fused)

    # Mean pooling over real tokens, then L2 normalisation (sentence-transformers' Pooling + Normalize).
    mask_3d = g.op("Unsqueeze", [mask_f, g.const("axes2", np.array([2], np.int64))])
    axis1 = g.const("axis1", np.array([1], np.int64))
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask_3d]), axis1], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [mask_3d, axis1], keepdims=0), g.const("eps_count", np.array(1e-9, np.float32))])
    mean = g.op("Div", [summed, count])
    norm = g.op("ReduceL2", [mean], axes=[-1], keepdims=1)  # axes is an attribute until opset 18
    norm = g.op("Max", [norm, g.const("eps_norm", np.array(1e-12, np.float32))])
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embeddings"], name="normalize"))

    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        inputs=[helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
                helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        outputs=[helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", shape.hidden])],
        initializer=g.initializers)
    opsets = [helper.make_opsetid("", OPSET)]
    if fused:
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="docqa")
    model.ir_version = IR_VERSION
    return model


def _plain_attention(g: _Graph, x: str, mask_bias: str, W, p: str, i: int, shape: BertShape, scale: float) -> str:
    """Self-attention from standard ONNX ops; the 1/sqrt(d) scale is folded into the query weights."""
    split = g.const(f"l{i}_heads_shape", np.array([0, 0, shape.heads, shape.hidden // shape.heads], np.int64))

    def project(name: str, factor: float) -> str:
        y = g.op("Add", [g.op("MatMul", [x, g.const(f"l{i}_{name}_w", W(p + f"attention.self.{name}.weight").T * factor)],
                              name=f"l{i}_{name}"),
                         g.const(f"l{i}_{name}_b", W(p + f"attention.self.{name}.bias") * factor)])
        return g.op("Reshape", [y, split])

    q = g.op("Transpose", [project("query", scale)], perm=[0, 2, 1, 3])
    k = g.op("Transpose", [project("key", 1.0)], perm=[0, 2, 3, 1])
    v = g.op("Transpose", [project("value", 1.0)], perm=[0, 2, 1, 3])
    probs = g.op("Softmax", [g.op("Add", [g.op("MatMul", [q, k]), mask_bias])], axis=-1)
    ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    return g.op("Reshape", [ctx, g.const(f"l{i}_merge_shape", np.array([0, 0, shape.hidden], np.int64))])


def _add_norm(g: _Graph, y: str, residual: str, bias: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
              name: str, eps: float, fused: bool) -> str:
    """LayerNorm(y + bias + residual)."""
    b, gm, bt = g.const(name + "_bias", bias), g.const(name + "_w", gamma), g.const(name + "_b", beta)
    if fused:
        return g.op("SkipLayerNormalization", [y, residual, gm, bt, b], domain="com.microsoft", epsilon=eps)
    return g.op("LayerNormalization", [g.op("Add", [g.op("Add", [y, b]), residual]), gm, bt], axis=-1, epsilon=eps)


def _bias_gelu(g: _Graph, y: str, bias: str, fused: bool) -> str:
    """Exact (erf) GELU of y + bias, as BERT's "gelu" activation."""
    if fused:
        return g.op("BiasGelu", [y, bias], domain="com.microsoft")
    z = g.op("Add", [y, bias])
    erf = g.op("Erf", [g.op("Div", [z, g.const(f"{bias}_sqrt2", np.array(math.sqrt(2.0), np.float32))])])
    half = g.const(f"{bias}_half", np.array(0.5, np.float32))
    one = g.const(f"{bias}_one", np.array(1.0, np.float32))
    return g.op("Mul", [g.op("Mul", [z, half]), g.op("Add", [erf, one])])
