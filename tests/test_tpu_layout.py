"""TPU tiled-layout padding of the training state, against layouts and bytes libtpu reported."""

from planner.param_layout import COLUMN, REPLICATED, ROW, param_arrays, shard_shape
from planner.plan import make_plan
from planner.request import PlanRequest
from planner.tpu_layout import padding_bytes, tiled_elements


def test_tiled_elements_match_the_layouts_libtpu_chose():
    # (shape, itemsize) -> elements, read from entry_computation_layout of compiled training steps
    assert tiled_elements((1216, 320), 4) == 1280 * 320  # {0,1:T(8,128)}: column-major pads less
    assert tiled_elements((320, 1216), 4) == 320 * 1280  # {1,0:T(8,128)}
    assert tiled_elements((18992, 320), 4) == 19072 * 320  # the embedding shard at fsdp 8 x tp 8
    assert tiled_elements((896, 448), 4) == 896 * 448  # column-major: no padding at all
    assert tiled_elements((448, 896), 4) == 448 * 896
    assert tiled_elements((2, 767), 4) == 2 * 768  # T(2,128): a 2-row array takes a 2-row tile
    assert tiled_elements((1536,), 4) == 2048  # T(1024)
    assert tiled_elements((3584,), 4) == 4096
    assert tiled_elements((512,), 4) == 512  # T(512)
    assert tiled_elements((128,), 4) == 128  # T(128)
    assert tiled_elements((2,), 4) == 128
    assert tiled_elements((128,), 2) == 256  # bf16 T(256)(128)(2,1)
    assert tiled_elements((2048,), 2) == 2048
    assert tiled_elements((), 4) == 128  # a scalar occupies 512 bytes
    assert padding_bytes((1216, 320), 4) == 64 * 320 * 4
    assert padding_bytes((512, 512), 2) == 0


def test_param_arrays_shard_like_the_reference_step():
    m = dict(hidden=2560, intermediate=9728, layers=2, heads=32, kv_heads=8, head_dim=128, vocab=151936,
             tied=True, qkv_bias=False, o_bias=False, qk_norm=True)
    arrays = param_arrays(m)
    assert arrays["layers/001/w_down"] == ((9728, 2560), ROW)
    assert arrays["layers/000/w_gate"] == ((2560, 9728), COLUMN)
    assert arrays["layers/000/q_norm"] == ((128,), REPLICATED)
    assert "lm_head" not in arrays  # tied
    assert param_arrays(m, stacked=True)["layers/wq"] == ((2, 2560, 4096), (None, "fsdp", "tp"))
    sizes = {"dp": 1, "fsdp": 8, "tp": 8}
    assert shard_shape(*arrays["layers/001/w_down"], sizes) == (1216, 320)
    assert shard_shape(*arrays["embed"], sizes) == (18992, 320)


def test_layout_padding_matches_xla_to_the_byte():
    # Bench row 410 (v6e-64, Qwen3-4B, fsdp 8 x tp 8, adamw, grad_accum 2): XLA's arguments were
    # 1,045,116,928 B against 1,008,717,840 B unpadded (state 1,008,705,536, batch 12,292, scalars
    # 12): 36,399,088 B of padding, of which 2,032 B are the three counters' and the advantages'
    # 512-byte tiles. The state's own: 36,397,056 B (gate/up/down shards of 1216 padded to 1280,
    # the embedding's 18992 rows to 19072, 73 norms of 2560 to 3072; four copies of each).
    plan = make_plan(PlanRequest(tpu="v6e-64", model="Qwen3-4B", workload="train", bs=16, micro_bs=8,
                                 prompt_len=512, len=1024, optimizer="adamw", mesh="1,8,8"))
    pad = next(c for c in plan.training.resident if c.name == "train.layout_padding")
    assert pad.bytes == 36_397_056 and pad.exact
    assert plan.training.resident_bytes == 1_045_116_928 - 12_292 - 12 - 2_032
    # The design card's step (v4-8, Qwen2.5-7B, fsdp 4, lion, grad_accum 8): XLA padded 524,272 B,
    # 2,032 B of them the counters' and advantages' tiles; the rest is 57 norms and 28 q biases of
    # 3584 padded to 4096, in three copies.
    card = make_plan(PlanRequest(tpu="v4-8", model="Qwen2.5-7B", workload="train", bs=32, micro_bs=4, len=1024))
    pad = next(c for c in card.training.resident if c.name == "train.layout_padding")
    assert pad.bytes == 524_272 - 2_032 == (57 + 28) * 512 * 4 * 3
