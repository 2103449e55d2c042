"""Speed of feature_extractor/ on 2 cores: videos/s, seconds of video per second.

The real model files cannot be fetched here, so the networks are stand-ins
of the real cost: Keras' InceptionV3 (the same architecture, random
weights) frozen behind the 2015 graph's input ops and tensor names, and a
VGGish checkpoint of the published widths (random values). The videos are
H.264 720p at 30 fps with AAC audio, made here with PyAV.

Baseline in the same run: decoding as the starter did, OpenCV's
VideoCapture reading every frame (its loop converts each one to BGR) and
taking the first at least 1 s after the last taken (needs
opencv-python-headless, requirements-dev.txt).

    python benchmarks/bench_extractor.py [--videos 4] [--seconds 60] [--workers 1,2]
"""

import argparse
import fractions
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import av  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

import extractor_testing  # noqa: E402
from feature_extractor import feature_extractor  # noqa: E402
from feature_extractor import video_decoding  # noqa: E402


def full_size_inception_graph_def():
    """Keras' InceptionV3 behind the 2015 graph's front: same cost, same names."""
    network = keras.applications.InceptionV3(
        weights=None, include_top=False, pooling="avg", input_shape=(299, 299, 3)
    )

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def graph(DecodeJpeg):  # noqa: N803 (the placeholder takes the graph's input name)
        image = tf.expand_dims(tf.cast(DecodeJpeg, tf.float32), 0)
        x = tf.compat.v1.image.resize_bilinear(image, [299, 299], name="ResizeBilinear")
        x = tf.multiply(tf.subtract(x, 128.0), 1.0 / 128.0, name="Mul")
        pooled = tf.reshape(network(x), [1, 1, 1, 2048], name="pool_3")
        return tf.reshape(pooled, [1, 2048], name="pool_3/_reshape")

    from tensorflow.python.framework import convert_to_constants  # pylint: disable=import-outside-toplevel

    frozen = convert_to_constants.convert_variables_to_constants_v2(
        graph.get_concrete_function()
    )
    return frozen.graph.as_graph_def()


def make_benchmark_video(path, seconds, rng):
    """720p H.264 at 30 fps: drifting noise blobs (work for the decoder), a tone."""
    width, height, fps = 1280, 720, 30
    with av.open(path, "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast"}
        audio = out.add_stream("aac", rate=44100, layout="stereo")
        base = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        for i in range(int(seconds * fps)):
            shifted = np.roll(base, (i // 3) % (width // 8), axis=1)
            image = np.repeat(np.repeat(shifted, 8, axis=0), 8, axis=1)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        t = np.arange(int(seconds * 44100)) / 44100
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        stereo = np.repeat(wave[None], 2, axis=0)
        for start in range(0, wave.size, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(stereo[:, start : start + 1024]),
                format="fltp",
                layout="stereo",
            )
            frame.sample_rate, frame.pts = 44100, start
            frame.time_base = fractions.Fraction(1, 44100)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)


def opencv_frames_like_the_starter(path, every_ms=1000.0, max_frames=300):
    """The starter's OpenCV loop: read every frame, keep one a second."""
    import cv2  # pylint: disable=import-outside-toplevel

    capture = cv2.VideoCapture(path)
    last, frames = -99999.0, []
    while len(frames) < max_frames:
        while capture.get(cv2.CAP_PROP_POS_MSEC) < every_ms + last:
            if not capture.read()[0]:
                return frames
        last = capture.get(cv2.CAP_PROP_POS_MSEC)
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])
    return frames


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument(
        "--work_dir", default=os.path.join(tempfile.gettempdir(), "bench_extractor")
    )
    args = parser.parse_args()

    model_dir = os.path.join(args.work_dir, "yt8m")
    graph = os.path.join(model_dir, "classify_image_graph_def.pb")
    if not os.path.exists(os.path.join(model_dir, "vggish_pca_params.npz")):
        extractor_testing.write_assets(
            model_dir, vggish_widths=extractor_testing.FULL_VGGISH
        )
        os.remove(graph)  # the small stand-in; the full-size one follows
    if not os.path.exists(graph):
        with open(graph, "wb") as f:
            f.write(full_size_inception_graph_def().SerializeToString())
    rng = np.random.default_rng(0)
    paths = []
    for i in range(args.videos):
        path = os.path.join(args.work_dir, f"video{i}_{args.seconds:g}s.mp4")
        if not os.path.exists(path):
            make_benchmark_video(path, args.seconds, rng)
        paths.append(path)
    print(
        f"{args.videos} videos of {args.seconds:g} s, 1280x720 H.264 30 fps, AAC stereo 44.1 kHz"
    )

    extractor = feature_extractor.VideoFeatureExtractor(model_dir, download=False)
    extractor.extract(paths[0])  # warm-up: tracing, first allocations
    parts = {"decode": 0.0, "images": 0.0, "audio": 0.0}
    for path in paths:
        for part, seconds in extractor.extract(path).seconds.items():
            parts[part] += seconds
    total = sum(parts.values())
    video_seconds = args.videos * args.seconds
    print(
        f"in one process: {args.videos / total:.3f} videos/s, "
        f"{video_seconds / total:.1f} s of video per second"
    )
    for part, seconds in parts.items():
        print(
            f"  {part:7s} {seconds / args.videos:6.2f} s a video ({100 * seconds / total:.0f}%)"
        )

    ours, video = timed(video_decoding.decode, paths[0], 1, 300, True)
    try:
        theirs, frames = timed(opencv_frames_like_the_starter, paths[0])
        print(
            f"decoding one video: PyAV {ours:.2f} s ({len(video.frames)} frames, with audio), "
            f"the starter's OpenCV loop {theirs:.2f} s ({len(frames)} frames, no audio): "
            f"{theirs / ours:.2f}x"
        )
    except ImportError:
        print(
            "decoding baseline skipped: pip install -r requirements-dev.txt (opencv-python-headless)"
        )
    frames = video.frames[:32]
    elapsed, _ = timed(extractor.images.pool_3, frames)
    print(f"image network alone: {len(frames) / elapsed:.1f} frames/s")

    csv_path = os.path.join(args.work_dir, "videos.csv")
    with open(csv_path, "w") as f:
        f.writelines(f"{path},0\n" for path in paths)
    for workers in map(int, args.workers.split(",")):
        output = os.path.join(args.work_dir, f"out{workers}", "features.tfrecord")
        if os.path.exists(output):
            os.remove(output)
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                os.path.join(ROOT, "feature_extractor", "extract_tfrecords_main.py"),
                f"--input_videos_csv={csv_path}",
                f"--output_tfrecords_file={output}",
                f"--model_dir={model_dir}",
                f"--num_workers={workers}",
            ],
            check=True,
            capture_output=True,
        )
        elapsed = time.perf_counter() - start
        print(
            f"extract_tfrecords_main.py --num_workers={workers}: {elapsed:.1f} s for "
            f"{args.videos} videos, start-up included: {args.videos / elapsed:.3f} videos/s, "
            f"{video_seconds / elapsed:.1f} s of video per second"
        )


if __name__ == "__main__":
    main()
