"""feature_extractor/: decoding, the image and audio features, the assets, the program.

The model files are stand-ins built here (extractor_testing.py); nothing is
downloaded. Numerical references are numpy written from the published
formulas, not from the code under test.
"""

import csv
import os
import tarfile
import time
import urllib.error

import numpy as np
import pytest
import tensorflow as tf

import extractor_testing
import quantization
import readers
from cli import UsageError
from feature_extractor import assets
from feature_extractor import feature_extractor
from feature_extractor import video_decoding
from feature_extractor import vggish
from program_testing import run_program

EXTRACT = "feature_extractor/extract_tfrecords_main.py"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return extractor_testing.write_assets(str(tmp_path_factory.mktemp("yt8m")))


@pytest.fixture(scope="module")
def extractor(model_dir):
    return feature_extractor.VideoFeatureExtractor(model_dir, download=False)


# --- encoding -----------------------------------------------------------------


def test_encode_is_the_truncation_the_dequantiser_undoes():
    x = np.random.default_rng(0).uniform(-2.5, 2.5, 100_000).astype(np.float32)
    want = np.floor((np.clip(x, -2, 2) + 2) * 255 / 4).astype(np.uint8)
    np.testing.assert_array_equal(quantization.encode(x), want)
    inside = np.abs(x) < 1.9
    error = quantization.dequantize(quantization.encode(x))[inside] - x[inside]
    # Truncation reads back unbiased; the starter extractor's rounding did not.
    rounded = np.round((x + 2) * 255 / 4).astype(np.uint8)
    assert abs(error.mean()) < 2e-4
    assert quantization.dequantize(rounded)[inside].mean() - x[inside].mean() > 0.007


# --- images -------------------------------------------------------------------


def test_pca_whitening_against_the_formula(extractor, model_dir):
    pool_3 = np.random.default_rng(1).uniform(0, 1, (5, 2048))
    mean = np.load(os.path.join(model_dir, "mean.npy"))[:, 0].astype(np.float64)
    eigenvals = np.load(os.path.join(model_dir, "eigenvals.npy"))[:1024, 0]
    eigenvecs = np.load(os.path.join(model_dir, "eigenvecs.npy"))[:1024]  # rows
    want = ((pool_3 - mean) @ eigenvecs.T.astype(np.float64)) / np.sqrt(
        eigenvals + 1e-4
    )
    got = extractor.images.apply_pca(pool_3)
    assert got.shape == (5, 1024)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_removed_batch_norm_op_is_rewritten_to_its_formula():
    rng = np.random.default_rng(2)
    t, m, v, beta, gamma = (
        rng.uniform(0.1, 2, s).astype(np.float32) for s in ((2, 3, 3, 4), 4, 4, 4, 4)
    )
    for scale in (True, False):
        graph_def = tf.compat.v1.GraphDef()
        for name, value in zip("tmvbg", (t, m, v, beta, gamma)):
            node = graph_def.node.add(name=name, op="Const")
            node.attr["dtype"].type = tf.float32.as_datatype_enum
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        bn = graph_def.node.add(
            name="bn", op="BatchNormWithGlobalNormalization", input=list("tmvbg")
        )
        bn.attr["T"].type = tf.float32.as_datatype_enum
        bn.attr["variance_epsilon"].f = 0.001
        bn.attr["scale_after_normalization"].b = scale
        feature_extractor._rewrite_global_batch_norms(graph_def)
        assert "BatchNormWithGlobalNormalization" not in {n.op for n in graph_def.node}
        run = tf.compat.v1.wrap_function(
            lambda: tf.graph_util.import_graph_def(
                graph_def, return_elements=["bn:0"], name=""
            ),
            [],
        )
        want = (t - m) / np.sqrt(v + 0.001) * (gamma if scale else 1) + beta
        np.testing.assert_allclose(run()[0].numpy(), want, rtol=1e-5)


def test_the_graph_takes_frames_of_any_size(extractor):
    rng = np.random.default_rng(3)
    frames = [
        rng.integers(0, 256, shape, dtype=np.uint8)
        for shape in ((36, 52, 3), (90, 40, 3))
    ]
    features = [
        extractor.images.extract_rgb_frame_features(f, apply_pca=False) for f in frames
    ]
    assert [f.shape for f in features] == [(2048,), (2048,)]
    # Different frames give different features (the graph really ran on each).
    assert np.abs(features[0] - features[1]).max() > 1e-3
    both = extractor.images.pool_3(np.stack([frames[0], frames[0]]))
    np.testing.assert_array_equal(both[1], features[0])


def test_damaged_or_foreign_graph_is_named(tmp_path, model_dir):
    for name in ("mean.npy", "eigenvals.npy", "eigenvecs.npy"):
        os.symlink(os.path.join(model_dir, name), tmp_path / name)
    graph = tmp_path / "classify_image_graph_def.pb"
    graph.write_bytes(open(os.path.join(model_dir, graph.name), "rb").read()[:5000])
    with pytest.raises(
        UsageError, match="classify_image_graph_def.pb .*cannot be read.*download"
    ):
        feature_extractor.YouTube8MFeatureExtractor(str(tmp_path), download=False)
    graph.write_bytes(tf.compat.v1.GraphDef().SerializeToString())
    with pytest.raises(UsageError, match="no DecodeJpeg or pool_3/_reshape"):
        feature_extractor.YouTube8MFeatureExtractor(str(tmp_path), download=False)


def test_pca_of_the_wrong_shape_is_named(tmp_path, model_dir):
    extractor_testing.write_yt8m_pca(str(tmp_path))
    os.symlink(
        os.path.join(model_dir, "classify_image_graph_def.pb"),
        tmp_path / "classify_image_graph_def.pb",
    )
    np.save(tmp_path / "mean.npy", np.zeros((1024, 1), np.float32))
    with pytest.raises(UsageError, match=r"mean.npy .*shape is \[1024, 1\]"):
        feature_extractor.YouTube8MFeatureExtractor(str(tmp_path), download=False)


# --- audio --------------------------------------------------------------------


def _log_mel_reference(waveform):
    """VGGish's front end in float64 numpy, from its published definition."""
    window, hop, fft = 400, 160, 512
    count = 1 + (len(waveform) - window) // hop
    frames = np.stack([waveform[i * hop : i * hop + window] for i in range(count)])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi / window * np.arange(window))  # periodic
    magnitude = np.abs(np.fft.rfft(frames * hann, fft))
    mel = lambda hz: 1127.0 * np.log(1.0 + hz / 700.0)  # noqa: E731 (HTK)
    bins = mel(np.linspace(0, 8000, fft // 2 + 1))
    edges = np.linspace(mel(125.0), mel(7500.0), 64 + 2)
    weights = np.zeros((fft // 2 + 1, 64))
    for band in range(64):
        low, centre, high = edges[band : band + 3]
        rising = (bins - low) / (centre - low)
        falling = (high - bins) / (high - centre)
        weights[:, band] = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # the DC bin
    return np.log(magnitude @ weights + 0.01)


def test_log_mel_front_end_against_vggish_definition():
    rng = np.random.default_rng(4)
    t = np.arange(vggish.PATCH_SAMPLES) / 16000
    waves = np.stack(
        [0.3 * np.sin(2 * np.pi * 1000 * t), rng.uniform(-0.5, 0.5, t.size)]
    )
    got = vggish.log_mel_patches(tf.constant(waves, tf.float32)).numpy()
    assert got.shape == (2, 96, 64)
    for wave, patch in zip(waves, got):
        np.testing.assert_allclose(
            patch, _log_mel_reference(wave), atol=2e-3, rtol=1e-4
        )
    # The 1 kHz tone peaks in the band whose centre is nearest 1 kHz.
    mel = lambda hz: 1127.0 * np.log(1.0 + hz / 700.0)  # noqa: E731
    centres = np.linspace(mel(125.0), mel(7500.0), 66)[1:-1]
    assert got[0].mean(axis=0).argmax() == np.abs(centres - mel(1000.0)).argmin()


def test_second_segments_start_at_each_frame_and_pad_with_silence():
    audio = np.arange(40_000, dtype=np.float32)
    segments = vggish.second_segments(audio, num_frames=3, frames_per_second=1)
    assert segments.shape == (3, vggish.PATCH_SAMPLES)
    np.testing.assert_array_equal(
        segments[1], audio[16_000 : 16_000 + vggish.PATCH_SAMPLES]
    )
    assert (
        segments[2, 40_000 - 32_000 - 1] == 39_999
        and not segments[2, 40_000 - 32_000 :].any()
    )
    half = vggish.second_segments(audio, num_frames=2, frames_per_second=2)
    assert half[1, 0] == 8_000


def _vggish_reference(variables, patches):
    """slim's VGGish: 3x3 SAME convs + ReLU, 2x2 SAME max pools, dense; linear fc2."""
    x = tf.constant(patches[..., None], tf.float32)
    for block in (
        ["conv1"],
        ["conv2"],
        ["conv3/conv3_1", "conv3/conv3_2"],
        ["conv4/conv4_1", "conv4/conv4_2"],
    ):
        for scope in block:
            x = tf.nn.relu(
                tf.nn.conv2d(x, variables[f"vggish/{scope}/weights"], 1, "SAME")
                + variables[f"vggish/{scope}/biases"]
            )
        x = tf.nn.max_pool2d(x, 2, 2, "SAME")
    x = tf.reshape(x, [x.shape[0], -1])
    for scope in ("fc1/fc1_1", "fc1/fc1_2", "fc2"):
        x = (
            x @ variables[f"vggish/{scope}/weights"]
            + variables[f"vggish/{scope}/biases"]
        )
        x = x if scope == "fc2" else tf.nn.relu(x)
    return x.numpy()


def test_vggish_reads_the_published_v1_checkpoint_by_name(tmp_path):
    variables = extractor_testing.vggish_variables(seed=5)
    checkpoint = extractor_testing.write_v1_checkpoint(
        str(tmp_path / "vggish_model.ckpt"), variables
    )
    assert os.path.isfile(checkpoint)  # V1: one file, as published
    network = vggish._network_from_checkpoint(checkpoint)
    patches = np.random.default_rng(6).normal(size=(2, 96, 64)).astype(np.float32)
    np.testing.assert_allclose(
        network(patches[..., None]).numpy(),
        _vggish_reference(variables, patches),
        rtol=1e-4,
        atol=1e-4,
    )
    del variables["vggish/conv4/conv4_2/biases"]
    extractor_testing.write_v1_checkpoint(checkpoint, variables)
    with pytest.raises(
        UsageError, match="vggish_model.ckpt .*no variable vggish/conv4/conv4_2/biases"
    ):
        vggish._network_from_checkpoint(checkpoint)


def test_vggish_postprocessing_is_pca_then_encoding(model_dir, extractor):
    params = np.load(os.path.join(model_dir, "vggish_pca_params.npz"))
    segments = (
        np.random.default_rng(7)
        .uniform(-0.3, 0.3, (2, vggish.PATCH_SAMPLES))
        .astype(np.float32)
    )
    raw = extractor.audio.raw_embeddings(segments)
    want = (params["pca_eigen_vectors"] @ (raw.T - params["pca_means"][:, None])).T
    np.testing.assert_allclose(
        extractor.audio.embed(segments), want, rtol=1e-4, atol=1e-5
    )


# --- decoding -----------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, fps, want", [(3.0, 1, 3), (2.5, 1, 2), (3.0, 2, 6), (12.0, 1, 10)]
)
def test_frame_count_is_floor_of_duration_times_fps(tmp_path, seconds, fps, want):
    path = extractor_testing.make_video(
        str(tmp_path / "v.mp4"), seconds=seconds, audio_tone=None
    )
    video = video_decoding.decode(path, frames_per_second=fps, max_frames=10)
    assert video.frames.shape == (want, 48, 64, 3)
    if want < 10:  # past max_frames seconds, decoding stops
        assert video.duration == pytest.approx(seconds)


def test_frames_are_chosen_by_their_timestamps(tmp_path):
    # Variable frame rate: the frame for second k is the first at or after k s.
    times = [0.0, 0.1, 0.9, 1.0, 1.7, 2.6, 3.3, 3.9]
    path = extractor_testing.make_video(
        str(tmp_path / "vfr.mp4"), seconds=4.0, frame_times=times, audio_tone=None
    )
    video = video_decoding.decode(path, frames_per_second=1)
    # The background's grey level is 30 x the frame's index.
    shown = np.round(video.frames[:, 44:, :, :].mean(axis=(1, 2, 3)) / 30)
    np.testing.assert_array_equal(shown, [0, 3, 5, 6])  # 0.0, 1.0, 2.6 and 3.3 s


def test_audio_is_16_khz_mono_from_the_first_frame(tmp_path):
    path = extractor_testing.make_video(
        str(tmp_path / "tone.mp4"), seconds=3.0, audio_tone=1000.0
    )
    audio = video_decoding.decode(path).audio
    assert abs(len(audio) - 48_000) < 2_000
    spectrum = np.abs(np.fft.rfft(audio[8_000:24_000]))
    assert abs(spectrum.argmax() * 16_000 / 16_000 - 1000) < 5  # 1 Hz bins


@pytest.mark.parametrize(
    "kind, message",
    [
        ("short", "shorter than one frame"),
        ("truncated", "cannot be opened"),
        ("missing", "No such file"),
        ("text", "cannot be opened"),
    ],
)
def test_bad_videos_say_why(tmp_path, kind, message):
    path = str(tmp_path / "bad.mp4")
    if kind == "short":
        extractor_testing.make_video(path, seconds=0.5)
    elif kind == "truncated":
        whole = open(extractor_testing.make_video(str(tmp_path / "w.mp4")), "rb").read()
        open(path, "wb").write(whole[: len(whole) // 2])
    elif kind == "text":
        open(path, "w").write("not a video\n")
    with pytest.raises(video_decoding.BadVideo, match=message):
        video_decoding.decode(path)


# --- assets -------------------------------------------------------------------


def _archive(tmp_path, names, source_dir):
    path = tmp_path / "pca.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            tar.add(os.path.join(source_dir, name), arcname=f"yt8m_pca/{name}")
    return path


def test_archive_in_model_dir_is_unpacked(tmp_path, model_dir):
    archive = _archive(tmp_path, assets.YT8M_PCA.files, model_dir)
    target = tmp_path / "md"
    target.mkdir()
    os.rename(archive, target / "yt8m_pca.tgz")
    paths = assets.ensure(assets.YT8M_PCA, str(target), download=False)
    assert [os.path.basename(p) for p in paths] == list(assets.YT8M_PCA.files)
    np.testing.assert_array_equal(
        np.load(paths[0]), np.load(os.path.join(model_dir, "mean.npy"))
    )


def test_missing_and_damaged_assets_are_named(tmp_path, model_dir):
    with pytest.raises(
        UsageError,
        match=r"vggish_model.ckpt \(the VGGish checkpoint\) not found.*storage.googleapis.com/audioset/vggish_model.ckpt",
    ):
        assets.ensure(assets.VGGISH_CHECKPOINT, str(tmp_path), download=False)
    archive = _archive(tmp_path, ["mean.npy"], model_dir)  # eigen* missing
    os.rename(archive, tmp_path / "yt8m_pca.tgz")
    with pytest.raises(UsageError, match="has no eigenvals.npy"):
        assets.ensure(assets.YT8M_PCA, str(tmp_path), download=False)
    (tmp_path / "yt8m_pca.tgz").write_bytes(b"\x1f\x8b partial")
    with pytest.raises(
        UsageError, match="yt8m_pca.tgz .*cannot be read.*data.yt8m.org"
    ):
        assets.ensure(assets.YT8M_PCA, str(tmp_path), download=False)


def test_download_is_checked_and_kept_only_when_whole(tmp_path, model_dir):
    source = os.path.join(model_dir, "vggish_pca_params.npz")
    good = assets.Asset(
        "the VGGish PCA parameters",
        f"file://{source}",
        ("vggish_pca_params.npz",),
        sha256=__import__("hashlib").sha256(open(source, "rb").read()).hexdigest(),
        size=os.path.getsize(source),
    )
    (path,) = assets.ensure(good, str(tmp_path / "a"))
    assert open(path, "rb").read() == open(source, "rb").read()
    wrong = assets.Asset(
        good.what, good.url, good.files, sha256="0" * 64, size=good.size
    )
    with pytest.raises(UsageError, match="not the published"):
        assets.ensure(wrong, str(tmp_path / "b"))
    assert os.listdir(tmp_path / "b") == []  # no partial file left behind
    offline = assets.Asset(good.what, "http://127.0.0.1:9/none.npz", good.files)
    with pytest.raises(UsageError, match="could not download.*without a network"):
        assets.ensure(offline, str(tmp_path / "c"))


def test_no_network_error_names_the_address(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(assets.urllib.request, "urlopen", refuse)
    with pytest.raises(
        UsageError, match="inception-2015-12-05.tgz.*no route to host.*--model_dir"
    ):
        assets.ensure(assets.INCEPTION, str(tmp_path))


# --- the program ----------------------------------------------------------------


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Five videos and a CSV: two classes by colour and tone, one without audio."""
    directory = tmp_path_factory.mktemp("videos")
    lines = []
    for i, (seconds, label, tone) in enumerate(
        [
            (4.0, 0, 300.0),
            (6.0, 1, 900.0),
            (5.0, 0, None),
            (7.0, 1, 900.0),
            (3.0, 0, 300.0),
        ]
    ):
        color = (255, 40, 0) if label == 0 else (0, 40, 255)
        path = extractor_testing.make_video(
            str(directory / f"clip{i}.mp4"),
            seconds=seconds,
            color=color,
            audio_tone=tone,
        )
        lines.append(f"{path},{label};{label + 2}")
    (directory / "videos.csv").write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture(scope="module")
def extracted(videos, model_dir, tmp_path_factory):
    """The videos' records, written by the program once: (path, its output)."""
    output = tmp_path_factory.mktemp("extracted") / "features.tfrecord"
    result = run_program(
        EXTRACT,
        f"--input_videos_csv={videos}/videos.csv",
        f"--output_tfrecords_file={output}",
        f"--model_dir={model_dir}",
    )
    return output, result


def _records(pattern):
    reader = readers.YT8MFrameFeatureReader(
        num_classes=4,
        feature_names=["rgb", "audio"],
        feature_sizes=[1024, 128],
        dequantize=False,
    )
    batches = list(reader.dataset(pattern, batch_size=16))
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


@pytest.mark.slow
def test_records_read_back_as_the_dataset_schema(videos, extracted, extractor):
    output, result = extracted
    assert "Encoded 5 of 5 videos" in result.stdout
    assert "clip2.mp4 has no audio track" in result.stderr
    batch = _records(str(output))
    assert list(batch["num_frames"]) == [4, 6, 5, 7, 3]
    assert batch["video_ids"][1].decode() == f"{videos}/clip1.mp4"
    np.testing.assert_array_equal(batch["labels"][1], [0, 1, 0, 1])
    # The bytes are the extractor's features of the same video, encoded.
    features = extractor.extract(f"{videos}/clip1.mp4")
    frames = batch["video_matrix"][1, :6]
    np.testing.assert_array_equal(frames[:, :1024], features.rgb)
    np.testing.assert_array_equal(frames[:, 1024:], features.audio)
    assert not batch["video_matrix"][2, :5, 1024:].any()  # no audio track: zeros
    example = tf.train.SequenceExample.FromString(
        next(iter(tf.data.TFRecordDataset(str(output)))).numpy()
    )
    mean_rgb = np.array(example.context.feature["mean_rgb"].float_list.value)
    assert (
        mean_rgb.shape == (1024,)
        and len(example.context.feature["mean_audio"].float_list.value) == 128
    )


@pytest.mark.slow
def test_bad_video_stops_the_run_with_finished_shards_kept_and_rerun_skips_them(
    videos, model_dir, tmp_path
):
    csv_path = tmp_path / "videos.csv"
    lines = (videos / "videos.csv").read_text().splitlines()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((videos / "clip0.mp4").read_bytes()[:3000])
    csv_path.write_text("\n".join(lines[:3] + [f"{broken},1"] + lines[3:]) + "\n")
    output = tmp_path / "out" / "train.tfrecord"
    args = [
        f"--input_videos_csv={csv_path}",
        f"--output_tfrecords_file={output}",
        f"--model_dir={model_dir}",
        "--num_shards=2",
        "--noaudio_features",
    ]
    result = run_program(EXTRACT, *args, "--noskip_bad_videos", check=False)
    assert result.returncode == 1
    assert f"{broken} (line 4 of {csv_path}) cannot be opened" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(output.parent)) == ["train-00000-of-00002.tfrecord"]
    first = (output.parent / "train-00000-of-00002.tfrecord").read_bytes()
    result = run_program(EXTRACT, *args)
    assert "1 of 2 shards already complete: skipped." in result.stdout
    assert f"skipped {broken} (line 4" in result.stderr
    assert "Encoded 2 of 3 videos into 1 shard(s)" in result.stdout
    assert (output.parent / "train-00000-of-00002.tfrecord").read_bytes() == first
    batch = _records(str(output.parent / "train-*"))
    assert len(batch["video_ids"]) == 5 and batch["num_frames"].min() >= 3


@pytest.mark.slow
def test_two_workers_write_the_same_records_as_one(
    videos, model_dir, extracted, tmp_path
):
    output = tmp_path / "w2.tfrecord"
    run_program(
        EXTRACT,
        f"--input_videos_csv={videos}/videos.csv",
        f"--output_tfrecords_file={output}",
        f"--model_dir={model_dir}",
        "--num_workers=2",
    )
    outputs = [_records(str(extracted[0])), _records(str(output))]
    # The same videos in the same order; the features equal up to the float
    # rounding of another thread count (at most one step of 4/255, rarely).
    np.testing.assert_array_equal(outputs[0]["video_ids"], outputs[1]["video_ids"])
    np.testing.assert_array_equal(outputs[0]["num_frames"], outputs[1]["num_frames"])
    difference = np.abs(
        outputs[0]["video_matrix"].astype(int) - outputs[1]["video_matrix"]
    )
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999


@pytest.mark.slow
def test_missing_model_files_stop_before_any_video(videos, model_dir, tmp_path):
    result = run_program(
        EXTRACT,
        f"--input_videos_csv={videos}/videos.csv",
        f"--output_tfrecords_file={tmp_path}/x.tfrecord",
        f"--model_dir={tmp_path}/empty",
        "--nodownload_assets",
        check=False,
    )
    assert result.returncode == 1
    assert (
        "classify_image_graph_def.pb (the Inception-v3 graph of 2015-12-05) not found"
        in result.stderr
    )
    assert (
        "inception-2015-12-05.tgz" in result.stderr and "Traceback" not in result.stderr
    )
    assert not os.path.exists(tmp_path / "x.tfrecord")
    images_only = tmp_path / "images_only"
    images_only.mkdir()
    for name in assets.INCEPTION.files + assets.YT8M_PCA.files:
        os.symlink(os.path.join(model_dir, name), images_only / name)
    result = run_program(
        EXTRACT,
        f"--input_videos_csv={videos}/videos.csv",
        f"--output_tfrecords_file={tmp_path}/x.tfrecord",
        f"--model_dir={images_only}",
        "--nodownload_assets",
        check=False,
    )
    assert result.returncode == 1
    assert "vggish_model.ckpt (the VGGish checkpoint) not found" in result.stderr
    assert "Or pass --noaudio_features" in result.stderr


def test_csv_errors_name_the_line(tmp_path):
    from feature_extractor import extract_tfrecords_main as main

    path = tmp_path / "v.csv"
    path.write_text("a.mp4,1;2\n\nb.mp4,one\n")
    with pytest.raises(UsageError, match=r"line 3: labels 'one' are not integers"):
        main.read_videos_csv(str(path))
    path.write_text("a.mp4,1;2\nb.mp4\n")
    with pytest.raises(UsageError, match="line 2: expected <video_file>,<labels>"):
        main.read_videos_csv(str(path))
    path.write_text('"c,d.mp4",\na.mp4,3;1\n')
    videos = main.read_videos_csv(str(path))
    assert [(v.path, v.labels, v.line) for v in videos] == [
        ("c,d.mp4", (), 1),
        ("a.mp4", (1, 3), 2),
    ]


@pytest.mark.slow
def test_from_video_files_to_a_submission_and_pictures(videos, extracted, tmp_path):
    features = extracted[0]
    train_dir = tmp_path / "run"
    run_program(
        "train.py",
        f"--train_dir={train_dir}",
        "--model=DCGNModel",
        f"--train_data_pattern={features}",
        "--num_classes=4",
        "--batch_size=5",
        "--max_steps=6",
        "--dcgn_levels=2",
        "--dcgn_filters=8",
        "--max_frames=8",
    )
    submission = tmp_path / "submission.csv"
    run_program(
        "inference.py",
        f"--train_dir={train_dir}",
        f"--input_data_pattern={features}",
        f"--output_file={submission}",
    )
    rows = list(csv.reader(open(submission)))
    assert rows[0] == ["VideoId", "LabelConfidencePairs"] and len(rows) == 6
    assert rows[2][0] == f"{videos}/clip1.mp4" and len(rows[2][1].split()) == 8
    shown = run_program(
        "show_predictions.py",
        f"--train_dir={train_dir}",
        f"--input_data_pattern={features}",
        f"--output_dir={tmp_path}/shown",
        "--top_k=3",
    )
    assert f"{videos}/clip1.mp4: " in shown.stdout
    labels = list(csv.DictReader(open(tmp_path / "shown" / "labels.csv")))
    assert len(labels) == 15 and {row["Name"] for row in labels} <= {
        "Game",
        "Video game",
        "Vehicle",
        "Concert",
    }
    pictures = sorted(p for p in os.listdir(tmp_path / "shown") if p.endswith(".png"))
    assert len(pictures) == 5
    png = (tmp_path / "shown" / pictures[0]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def _features(num_frames, audio=True):
    rng = np.random.default_rng(num_frames)
    rgb = rng.uniform(-1, 1, (num_frames, 1024)).astype(np.float32)
    sound = rng.uniform(-1, 1, (num_frames, 128)).astype(np.float32)
    return feature_extractor.VideoFeatures(
        rgb=quantization.encode(rgb),
        mean_rgb=rgb.mean(0),
        audio=quantization.encode(sound) if audio else None,
        mean_audio=sound.mean(0) if audio else None,
        seconds={},
    )


def test_video_level_records_read_as_the_dataset_s(tmp_path):
    from feature_extractor import extract_tfrecords_main as main

    settings = main.Settings(
        "", 1, 300, audio=False, record=main.RecordFormat(frame_level=False)
    )
    features = _features(4, audio=False)
    record = main._record(main.Video(0, "clip.mp4", (2, 3), 1), features, settings)
    path = str(tmp_path / "video.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(record)
    reader = readers.YT8MAggregatedFeatureReader(
        num_classes=4,
        feature_names=["mean_rgb", "mean_audio"],
        feature_sizes=[1024, 128],
    )
    batch = next(iter(reader.dataset(path, batch_size=1)))
    np.testing.assert_allclose(
        batch["video_matrix"][0, :1024], features.mean_rgb, rtol=1e-6
    )
    assert (
        not batch["video_matrix"][0, 1024:].numpy().any()
    )  # zero audio, as the starter
    np.testing.assert_array_equal(batch["labels"][0], [0, 0, 1, 1])
    assert batch["video_ids"][0] == b"clip.mp4"


@pytest.mark.slow
def test_sigterm_keeps_finished_shards_and_leaves_no_partial_file(
    videos, model_dir, tmp_path
):
    import subprocess
    import sys

    lines = (videos / "videos.csv").read_text().splitlines() * 8
    (tmp_path / "many.csv").write_text("\n".join(lines) + "\n")
    output = tmp_path / "out" / "f.tfrecord"
    process = subprocess.Popen(
        [
            sys.executable,
            EXTRACT,
            f"--input_videos_csv={tmp_path}/many.csv",
            f"--output_tfrecords_file={output}",
            f"--model_dir={model_dir}",
            "--num_shards=40",
            "--noaudio_features",
        ],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert process.stdout.readline().startswith("1/40 videos")
    first = output.parent / "f-00000-of-00040.tfrecord"
    for _ in range(300):  # the first shard is renamed once its one video is in
        if first.exists():
            break
        time.sleep(0.1)
    process.terminate()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "SIGTERM: stopped." in stdout and "Traceback" not in stderr
    written = os.listdir(output.parent)
    assert written and all(name.startswith("f-000") for name in written)
    assert len(written) < 40
