"""The NVDEC decode path (chain_sdk/video/nvdec.py).

Here without a GPU: the typed refusal, and the time rule that makes the GPU decoder return the
frames the CPU index chose. With a GPU, torch CUDA and torchcodec (`-m gpu`, run by
scripts/gpu_check.sh): GPU frames against PyAV's, and Encoder codes with decoder="nvdec" against
the CPU decoders' on the sample clips, with the clip never leaving the GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_sdk import data
from chain_sdk.errors import DecoderUnavailableError
from chain_sdk.video import nvdec, open_video
from chain_sdk.video.pyav import PyAVSource
from chain_sdk.video.sampling import segment_indices

GPU = nvdec.available()
NO_GPU = "needs torch CUDA, torchcodec and a GPU"


@pytest.mark.skipif(GPU, reason="checks the refusal where GPU decoding cannot run")
def test_without_the_gpu_stack_opening_is_a_typed_error_saying_why(sample_paths):
    with pytest.raises(DecoderUnavailableError, match="torch|CUDA|torchcodec"):
        open_video(sample_paths[0], decoder="nvdec")


def test_a_cpu_device_is_refused_for_nvdec(sample_paths):
    with pytest.raises(DecoderUnavailableError, match="CUDA device"):
        nvdec.NvdecSource(str(sample_paths[0]), "clip", device="cpu")


def _played_at(times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The frame a decoder shows at time t: the last one starting at or before it."""
    return np.searchsorted(times, t, side="right") - 1


def test_requested_times_land_on_the_sampled_frames_of_the_sample_clips(sample_paths):
    """The times asked of the GPU decoder select, by the "played at" rule, exactly the frames
    the CPU index chose (here computed from PyAV's packet index of each sample clip)."""
    for path in sample_paths:
        with PyAVSource(str(path), path.name) as src:
            times = src.frame_times()
            if times is None:
                continue
            wanted = np.unique(segment_indices(len(times), 25))
            asked = nvdec.stream_times(times, wanted, src.origin_seconds)
            np.testing.assert_array_equal(_played_at(times, asked - src.origin_seconds), wanted)


@settings(max_examples=100, deadline=None)
@given(gaps=st.lists(st.floats(1e-3, 0.5), min_size=1, max_size=200), origin=st.floats(-5, 1e4),
       seed=st.integers(0, 2**31))
def test_requested_times_land_on_their_frames_for_any_frame_timing(gaps, origin, seed):
    """Variable frame rate, any start time: the asked time is inside the wanted frame."""
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    rng = np.random.default_rng(seed)
    wanted = np.unique(rng.integers(0, len(times), min(25, len(times))))
    asked = nvdec.stream_times(times, wanted, origin)
    np.testing.assert_array_equal(_played_at(origin + times, asked), wanted)


# ------------------------------------------------------------------ on a GPU


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason=NO_GPU)
@pytest.mark.parametrize("name", data.SMALL_CLIPS)
@pytest.mark.usefixtures("sample_paths")
def test_gpu_frames_are_the_cpu_decoders_frames(name):
    from chain_sdk.video.base import SeekMismatch

    path = data.path(name, fetch_missing=False)

    with PyAVSource(str(path), name) as cpu, nvdec.NvdecSource(str(path), name) as gpu:
        times = cpu.frame_times()
        if times is None or cpu.in_order_only:
            pytest.skip(f"{name}: no frame index to select by (sampled sequentially on the CPU)")
        assert np.array_equal(gpu.frame_times(), times)
        wanted = np.unique(segment_indices(len(times), 25)).tolist()
        want = dict(cpu.decode_at(wanted))
        try:
            got = dict(gpu.decode_at(wanted))
        except SeekMismatch as exc:  # sampling then decodes on the CPU: say so, do not pass
            pytest.skip(f"{name}: the GPU decoder gave other frames ({exc}); sampling falls back to the CPU")
        assert sorted(got) == wanted
        for i in wanted:
            frame = got[i]
            assert frame.is_cuda and tuple(frame.shape) == want[i].shape
            diff = np.abs(frame.cpu().numpy().astype(np.int16) - want[i])
            # another YUV -> RGB conversion (and chroma upsampling), not another frame
            assert diff.mean() < 4.0, (name, i, diff.mean())



@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason=NO_GPU)
def test_encoder_on_nvdec_keeps_the_clip_on_the_gpu_and_gives_the_cpu_codes(sample_paths):
    import torch

    from chain_sdk.encoder import Encoder

    cpu = Encoder(device="cuda")  # CPU decoding, GPU inference
    gpu = Encoder(device="cuda", decoder="nvdec")
    clip, _ = gpu._sample(sample_paths[0])
    assert isinstance(clip, torch.Tensor) and clip.is_cuda and clip.dtype == torch.uint8
    a = cpu.run_clips(np.stack([cpu.sample(p) for p in sample_paths]))
    b = gpu.run_clips(torch.stack([gpu._sample(p)[0] for p in sample_paths]))
    clear = np.abs(a["logits"]) > 0.5
    same = (np.unpackbits(a["code"], axis=1) == np.unpackbits(b["code"], axis=1))
    assert same[clear].mean() >= 0.98, same[clear].mean()
    batch = gpu.encode_batch(sample_paths, progress=False)
    assert not batch.failures and np.array_equal(batch.codes, b["code"][batch.indices])
